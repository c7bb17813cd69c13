// Plays the Expertflow customer widget (5.x) against a web channel server, with the
// widget's own socket.io-client version (4.5.4, default transports: HTTP long-polling, then
// the upgrade to WebSocket) and the widget's exact emits
// (shared/protocols/expertflow.md §3.1, §4).
//
// Usage: node vendor_client.js <base URL> <serviceIdentifier> <channelCustomerIdentifier>
// Prints one JSON line with what happened, then exits (0 on success).
"use strict";

const { io } = require("socket.io-client");

const [base, serviceIdentifier, channelCustomerIdentifier] = process.argv.slice(2);
const url = new URL(`${base}/web-channel-manager`);
const result = { transports: [], events: [], token: null, acks: [] };

const customer = {
  serviceIdentifier,
  channelCustomerIdentifier,
  browserDeviceInfo: { browserId: "b-1", browserIdExpiryTime: "9999", browserName: "chrome", deviceType: "desktop" },
  queue: "",
  locale: { timezone: "Asia/Karachi", language: "en", country: "PK" },
  formData: {
    id: "fd-1", formId: "prechat-form-1", filledBy: "web-widget",
    attributes: [{ key: "firstName", value: "Widget", type: "string" }],
    entities: {}, createdOn: Date.now(),
  },
};

const socket = io(url.origin, {
  path: url.pathname + "/socket.io",
  auth: { serviceIdentifier, channelCustomerIdentifier },
});

// The manager opens the Engine.IO connection: record its first transport and the upgrade.
socket.io.on("open", () => {
  result.transports.push(socket.io.engine.transport.name);
  socket.io.engine.once("upgrade", (t) => result.transports.push(t.name));
});

const finish = (code) => {
  process.stdout.write(JSON.stringify(result) + "\n");
  socket.disconnect();
  process.exit(code);
};
setTimeout(() => {
  result.error = "timeout";
  finish(1);
}, 8000);

socket.on("connect", () => {
  socket.emit("CHAT_RESUMED", { serviceIdentifier, channelCustomerIdentifier }, (ack) => {
    result.acks.push({ CHAT_RESUMED: ack.isChatAvailable });
    socket.emit("CHAT_REQUESTED", {
      channelCustomerIdentifier,
      serviceIdentifier,
      additionalAttributes: [{
        key: "WebChannelData", type: "WebChannelData",
        value: { browserDeviceInfo: customer.browserDeviceInfo, queue: customer.queue, locale: customer.locale, formData: customer.formData },
      }],
    });
  });
});
socket.on("connect_error", (e) => {
  result.error = `connect_error: ${e.message}`;
  finish(1);
});
socket.on("TOKEN_GENERATED", (t) => { result.token = typeof t; });
socket.on("CHANNEL_SESSION_STARTED", (cim) => {
  result.events.push("CHANNEL_SESSION_STARTED");
  result.conversationId = cim.header.conversationId;
  // Wait for the upgrade so the message travels over the WebSocket, then send it.
  const send = () => socket.emit("MESSAGE_RECEIVED", {
    type: "PLAIN",
    header: {
      originalMessageId: null, intent: null, entities: {}, additionalData: { carousalCardId: null },
      sender: { id: channelCustomerIdentifier, type: "CUSTOMER", senderName: "Widget", additionalDetail: {} },
    },
    body: { type: "PLAIN", markdownText: "hello from the widget" },
    customer,
    timestamp: "",
  }, (ack) => result.acks.push({ MESSAGE_RECEIVED: ack.code }));
  if (socket.io.engine.transport.name === "websocket") send();
  else socket.io.engine.once("upgrade", send);
});
socket.on("MESSAGE_RECEIVED", (cim) => {
  const who = cim.header && cim.header.sender ? cim.header.sender.type : "?";
  result.events.push(`MESSAGE_RECEIVED ${who} ${cim.body.type}`);
  if (who === "CUSTOMER" && cim.body.type === "PLAIN") {
    result.echo = cim.body.markdownText;
    result.echoTransport = socket.io.engine.transport.name;
    socket.emit("CHAT_ENDED", customer);
  }
});
socket.on("CHAT_ENDED", () => {
  result.events.push("CHAT_ENDED");
  finish(0);
});
