// The bundler replaces `process.env.NAME` with a string at build time (esbuild's `define`), as
// Vite and webpack do; this declares it for the type checker. No Node types in a browser build.
declare const process: { env: Record<string, string | undefined> };
