// Reference socket.io 4.x server for the cc-transport Socket.IO client tests.
//
// Listens on 127.0.0.1 (a free port), prints `PORT <n>` on stdout, and serves:
// - path from env SIO_PATH (default `/socket.io`), ping interval/timeout from env
//   PING_INTERVAL / PING_TIMEOUT (ms);
// - a middleware that refuses a CONNECT without `serviceIdentifier` and
//   `channelCustomerIdentifier` in the auth payload (CONNECT_ERROR "missing identity");
// - on connection: `welcome` {auth, count} (count = connections seen for that customer);
// - `echo` (with ack): acks with its arguments; `echo_event`: emits `echoed` with the payload;
// - `ask` : emits `question` with an ack callback, then `answer_was` with the client's answer;
// - `server_disconnect`: disconnects the socket from the server side (packet 41);
// - `drop_transport`: closes the underlying transport without a Socket.IO disconnect;
// - `stop_pings`: stops sending Engine.IO pings on this connection.
"use strict";

const http = require("http");
const { Server } = require("socket.io");

const httpServer = http.createServer();
const io = new Server(httpServer, {
  path: process.env.SIO_PATH || "/socket.io",
  pingInterval: Number(process.env.PING_INTERVAL || 25000),
  pingTimeout: Number(process.env.PING_TIMEOUT || 20000),
});

const seen = new Map();

io.use((socket, next) => {
  const auth = socket.handshake.auth || {};
  if (!auth.serviceIdentifier || !auth.channelCustomerIdentifier) {
    const err = new Error("missing identity");
    err.data = { fields: ["serviceIdentifier", "channelCustomerIdentifier"] };
    return next(err);
  }
  next();
});

io.on("connection", (socket) => {
  const auth = socket.handshake.auth;
  const key = `${auth.serviceIdentifier}/${auth.channelCustomerIdentifier}`;
  const count = (seen.get(key) || 0) + 1;
  seen.set(key, count);
  socket.emit("welcome", { auth, count, transport: socket.conn.transport.name });

  socket.on("echo", (...args) => {
    const ack = typeof args[args.length - 1] === "function" ? args.pop() : null;
    if (ack) ack(...args);
  });
  socket.on("echo_event", (payload) => socket.emit("echoed", payload));
  socket.on("ask", (payload) => {
    socket.emit("question", payload, (answer) => socket.emit("answer_was", answer));
  });
  socket.on("server_disconnect", () => socket.disconnect(true));
  socket.on("drop_transport", () => socket.conn.close());
  socket.on("stop_pings", () => {
    const conn = socket.conn;
    conn.schedulePing = () => {};
    clearTimeout(conn.pingIntervalTimer);
    clearTimeout(conn.pingTimeoutTimer);
    // A pong in flight would re-arm the interval timer with `refresh()`.
    conn.pingIntervalTimer = { refresh() {} };
    conn.pingTimeoutTimer = null;
  });
});

httpServer.listen(0, "127.0.0.1", () => {
  process.stdout.write(`PORT ${httpServer.address().port}\n`);
});

// Exit when the test that started us goes away.
process.stdin.on("end", () => process.exit(0));
process.stdin.resume();
