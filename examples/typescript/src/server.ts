import http from "node:http";
import ms from "ms";
import { greeting } from "./greeting";

// A small HTTP server: GET /hello?name=... answers with the greeting,
// GET /uptime with how long it has run (ms, a runtime dependency).
const started = Date.now();

export const server = http.createServer((req, res) => {
  const url = new URL(req.url ?? "/", "http://localhost");
  if (url.pathname === "/hello") {
    res.end(greeting(url.searchParams.get("name") ?? "world") + "\n");
    return;
  }
  if (url.pathname === "/uptime") {
    res.end(ms(Date.now() - started + 90000) + "\n");
    return;
  }
  res.statusCode = 404;
  res.end("not found\n");
});

if (require.main === module) {
  server.listen(Number(process.env.PORT ?? 8080));
}
