// Text a guest chose (a Host header, a host name, a console line quoted in an error, an agent's message), made
// safe for a terminal: control characters — escape sequences among them, which could rewrite what the user sees,
// set the window title or the clipboard — are shown as \xNN, never sent as they are. Line breaks and tabs are
// kept where a message has several lines.

// C0 controls but \t and \n, DEL, and C1 controls (which some terminals read as ESC + a letter).
const CONTROL = /[\x00-\x08\x0b-\x1f\x7f-\x9f]/g;

export function printable(text: string, keepLines = true): string {
  const s = keepLines ? text : text.replace(/[\t\n]/g, ' ');
  return s.replace(CONTROL, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}
