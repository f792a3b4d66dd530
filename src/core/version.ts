// The version boxlite reports (--version, the server's /v1/config); package.json's, kept in step by a unit test.
export const VERSION = '0.1.0';
