// Server-Sent Events from a fetch() body. EventSource cannot POST or send an Authorization
// header, and POST /api/query with "stream": true answers SSE, so the console parses the
// stream itself (the WHATWG "event stream" rules: event/data fields, blank line ends an event).

/** A parser fed text chunks; calls onEvent(name, data) for each complete event. */
export function createSseParser(onEvent) {
  let buffer = "";
  let name = "";
  let data = [];

  function line(text) {
    if (text === "") {
      if (data.length > 0) onEvent(name || "message", data.join("\n"));
      name = "";
      data = [];
      return;
    }
    if (text.startsWith(":")) return; // a comment (keep-alive)
    const colon = text.indexOf(":");
    const field = colon < 0 ? text : text.slice(0, colon);
    let value = colon < 0 ? "" : text.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") name = value;
    else if (field === "data") data.push(value);
  }

  return {
    push(chunk) {
      buffer += chunk;
      for (;;) {
        const end = buffer.search(/\r\n|\n|\r/);
        if (end < 0) return;
        // A lone \r at the end may be the first half of \r\n split across chunks: wait.
        if (buffer[end] === "\r" && end === buffer.length - 1) return;
        const width = buffer.startsWith("\r\n", end) ? 2 : 1;
        line(buffer.slice(0, end));
        buffer = buffer.slice(end + width);
      }
    },
  };
}

/** Reads a fetch Response's body to its end, calling onEvent(name, parsedJson) per event. */
export async function readEvents(response, onEvent) {
  const parser = createSseParser((name, text) => onEvent(name, JSON.parse(text)));
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    parser.push(value);
  }
}
