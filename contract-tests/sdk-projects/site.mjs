// A static site for the browser tests: an HTTP server on a free loopback port.
import { createServer } from "node:http";

/**
 * Serves `handler` on 127.0.0.1 (a free port). Resolves to the site's `origin` and `close()`,
 * which drops open connections and resolves once the server has stopped.
 */
export async function serveOnLoopback(handler) {
  const server = createServer(handler);
  await new Promise((r, j) => {
    server.once("error", j);
    server.listen(0, "127.0.0.1", r);
  });
  return {
    origin: `http://127.0.0.1:${server.address().port}`,
    close: () =>
      new Promise((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
