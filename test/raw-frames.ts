// A guest program (python3, run as root in a Debian box) that writes Ethernet frames of its own making straight to
// a NIC with an AF_PACKET socket: its kernel's routing never sees them, so they show what the host side of that
// NIC lets through. Used by the network boundary tests.

/** argv: IFNAME SRC_IP GATEWAY_IP CONTROL TARGET...
 *  - the gateway's MAC is learnt by an ARP request of its own (or taken from a "mac=" argument);
 *  - each TARGET is "tcp:DST:PORT" (a SYN), "udp:DST:PORT:TEXT" (a datagram) or "arp:DST" (a request);
 *  - CONTROL "dns:SERVER" sends a DNS query after the targets and waits for its answer: once it has come back, the
 *    helper on the other side has handled every frame sent before it. "none": no control.
 *  Options before IFNAME: "smac=MAC" (a source MAC other than the NIC's), "dmac=MAC" (a destination MAC instead
 *  of the gateway's). Prints "sent N" and then "control answered" or "control silent". */
export const RAW_FRAMES_PY = String.raw`
import socket, struct, sys, os, random
args = sys.argv[1:]
opts = {}
while args and '=' in args[0]:
    k, v = args.pop(0).split('=', 1)
    opts[k] = v
ifname, src, gw, control = args[:4]
targets = args[4:]
mac = lambda s: bytes(int(x, 16) for x in s.split(':'))
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
s.bind((ifname, 0))
own = s.getsockname()[4]
smac = mac(opts['smac']) if 'smac' in opts else own
srcb, gwb = socket.inet_aton(src), socket.inet_aton(gw)
s.settimeout(10)

def arp(op, tha, tpa, dst=b'\xff' * 6):
    body = struct.pack('!HHBBH6s4s6s4s', 1, 0x0800, 6, 4, op, smac, srcb, tha, tpa)
    return dst + smac + b'\x08\x06' + body

def gateway_mac():
    s.send(arp(1, b'\0' * 6, gwb))
    while True:
        f = s.recv(65535)
        if f[12:14] == b'\x08\x06' and struct.unpack('!H', f[20:22])[0] == 2 and f[28:32] == gwb:
            return f[22:28]

dmac = mac(opts['dmac']) if 'dmac' in opts else gateway_mac()

def csum(b):
    if len(b) % 2: b += b'\0'
    t = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    while t >> 16: t = (t & 0xffff) + (t >> 16)
    return (~t) & 0xffff

def ip4(proto, dst, payload):
    h = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(payload), random.randint(0, 65535), 0, 64, proto, 0, srcb, dst)
    h = h[:10] + struct.pack('!H', csum(h)) + h[12:]
    return dmac + smac + b'\x08\x00' + h + payload

def l4(proto, dst, seg):
    pseudo = srcb + dst + struct.pack('!BBH', 0, proto, len(seg))
    c = csum(pseudo + seg)
    at = 16 if proto == 6 else 6
    return seg[:at] + struct.pack('!H', c) + seg[at + 2:]

def tcp_syn(dst, port):
    seg = struct.pack('!HHIIBBHHH', random.randint(20000, 60000), port, random.randint(0, 2**32 - 1), 0, 5 << 4, 0x02, 65535, 0, 0)
    return ip4(6, dst, l4(6, dst, seg))

def udp(dst, port, data, sport=None):
    seg = struct.pack('!HHHH', sport or random.randint(20000, 60000), port, 8 + len(data), 0) + data
    return ip4(17, dst, l4(17, dst, seg))

sent = 0
for t in targets:
    kind, rest = t.split(':', 1)
    if kind == 'tcp':
        d, p = rest.rsplit(':', 1)
        s.send(tcp_syn(socket.inet_aton(d), int(p)))
    elif kind == 'udp':
        d, p, text = rest.split(':', 2)
        s.send(udp(socket.inet_aton(d), int(p), text.encode()))
    elif kind == 'arp':
        s.send(arp(1, b'\0' * 6, socket.inet_aton(rest)))
    sent += 1
print('sent', sent, flush=True)
if control.startswith('dns:'):
    server = socket.inet_aton(control[4:])
    qid = random.randint(0, 65535)
    q = struct.pack('!HHHHHH', qid, 0x0100, 1, 0, 0, 0) + b'\x07control\x07invalid\x00' + struct.pack('!HH', 1, 1)
    sport = random.randint(20000, 60000)
    s.send(udp(server, 53, q, sport))
    try:
        while True:
            f = s.recv(65535)
            if f[12:14] == b'\x08\x00' and f[23] == 17 and f[26:30] == server:
                ihl = (f[14] & 15) * 4
                u = f[14 + ihl:]
                if struct.unpack('!H', u[2:4])[0] == sport and struct.unpack('!H', u[8:10])[0] == qid:
                    print('control answered', flush=True)
                    break
    except socket.timeout:
        print('control silent', flush=True)
`;
