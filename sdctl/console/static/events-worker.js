// One event stream for every tab of the console: a browser opens at most six connections to a
// host, and each EventSource holds one, so tabs share this worker's instead of opening their own.
"use strict";
const ports = [];
let last = null;
const source = new EventSource("/events");
source.onmessage = (e) => {
  last = e.data;
  ports.forEach((port) => port.postMessage(e.data));
};
onconnect = (e) => {
  const port = e.ports[0];
  ports.push(port);
  if (last) port.postMessage(last);
  port.start();
};
