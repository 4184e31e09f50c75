/**
 * The isolates of one process talking to each other directly: one
 * `MessageChannel` for each pair, set up by the main isolate at start. A
 * request for an order another isolate owns hops to it as a message and
 * is answered there; nothing is shared under a lock.
 *
 * @module
 */

/**
 * A request as it crosses to another isolate. Its body, if it has one,
 * follows as `chunk` messages on the same channel and an `end`: a
 * transferred `ReadableStream` would set up a channel of its own for each
 * request, which cost a keyed POST that hops more than the rest of it.
 */
export interface WireRequest {
  method: string;
  url: string;
  headers: Array<[string, string]>;
  hasBody: boolean;
}

/**
 * A response as it crosses back; its body is transferred: the bytes of a
 * whole body, or the stream of one that is still being written (an event
 * stream). A transferred stream costs a channel of its own and a message
 * per chunk, so a body that is already whole crosses as one buffer.
 */
export interface WireResponse {
  status: number;
  statusText: string;
  headers: Array<[string, string]>;
  body: ReadableStream<Uint8Array> | ArrayBuffer | null;
}

/** What an isolate answers for the others. */
export interface MeshHandlers {
  /** Handles a request forwarded by another isolate. */
  fetch(request: Request): Promise<Response> | Response;
  /** Answers a data call (`list`, `get`, `count` …) from another isolate. */
  call(op: string, argument: unknown): Promise<unknown>;
}

type Envelope =
  | { kind: "fetch"; id: number; request: WireRequest }
  | { kind: "call"; id: number; op: string; argument: unknown }
  | { kind: "answer"; id: number; value: unknown }
  | { kind: "fail"; id: number; message: string }
  | { kind: "chunk"; id: number; bytes: Uint8Array }
  | { kind: "end"; id: number; error?: string }
  | { kind: "cancel"; id: number };

/** One isolate's ends of the channels to every other isolate. */
export class IsolateMesh {
  readonly #ports: Map<number, MessagePort>;
  readonly #waiting = new Map<
    number,
    { resolve: (value: unknown) => void; reject: (error: Error) => void }
  >();
  #nextId = 1;
  #handlers: MeshHandlers | undefined;
  // What other isolates sent before this one started serving (they may
  // listen a moment before it does), in the order it came.
  #early: Array<[MessagePort, Envelope]> = [];
  // Bodies of requests being received, and of requests being sent, by id.
  readonly #incoming = new Map<
    number,
    ReadableStreamDefaultController<Uint8Array>
  >();
  readonly #outgoing = new Map<
    number,
    ReadableStreamDefaultReader<Uint8Array>
  >();

  /** The mesh over `ports`, by the index of the isolate at each port's other end. */
  constructor(ports: Map<number, MessagePort>) {
    this.#ports = ports;
    for (const port of ports.values()) {
      port.onmessage = (event: MessageEvent<Envelope>) => {
        const envelope = event.data;
        const answering = envelope.kind === "answer" ||
          envelope.kind === "fail" || envelope.kind === "cancel";
        if (this.#handlers === undefined && !answering) {
          this.#early.push([port, envelope]);
        } else void this.#receive(port, envelope);
      };
    }
  }

  /** Starts answering the other isolates. */
  serve(handlers: MeshHandlers): void {
    this.#handlers = handlers;
    for (const [port, envelope] of this.#early.splice(0)) {
      void this.#receive(port, envelope);
    }
  }

  /** Sends `request` to isolate `index` and returns its answer. */
  async fetch(index: number, request: Request): Promise<Response> {
    const body = request.body;
    const wire: WireRequest = {
      method: request.method,
      url: request.url,
      headers: [...request.headers],
      hasBody: body !== null,
    };
    let sentId = 0;
    const answered = this.#send(
      index,
      (id) => ({ kind: "fetch", id: sentId = id, request: wire }),
      [],
    );
    if (body) void this.#sendBody(index, sentId, body);
    const answer = await answered as WireResponse;
    return new Response(answer.body, {
      status: answer.status,
      statusText: answer.statusText,
      headers: answer.headers,
    });
  }

  /** Calls `op` on isolate `index` with a structured-cloneable argument. */
  call(index: number, op: string, argument: unknown): Promise<unknown> {
    return this.#send(index, (id) => ({ kind: "call", id, op, argument }), []);
  }

  /** Closes every channel; calls still waiting fail. */
  close(): void {
    for (const port of this.#ports.values()) port.close();
    for (const { reject } of this.#waiting.values()) {
      reject(new Error("The isolate mesh is closed"));
    }
    this.#waiting.clear();
  }

  /** Sends a request's body after it, chunk by chunk, until it ends or the other side cancels it. */
  async #sendBody(
    index: number,
    id: number,
    body: ReadableStream<Uint8Array>,
  ): Promise<void> {
    const port = this.#ports.get(index)!;
    const reader = body.getReader();
    this.#outgoing.set(id, reader);
    try {
      while (true) {
        const { value, done } = await reader.read();
        if (done) break;
        port.postMessage(
          { kind: "chunk", id, bytes: value } satisfies Envelope,
        );
      }
      port.postMessage({ kind: "end", id } satisfies Envelope);
    } catch (error) {
      // Cut short by the client, or cancelled by the receiver.
      port.postMessage(
        {
          kind: "end",
          id,
          error: (error as Error)?.message ?? "cut short",
        } satisfies Envelope,
      );
    } finally {
      this.#outgoing.delete(id);
    }
  }

  #send(
    index: number,
    envelope: (id: number) => Envelope,
    transfer: Transferable[],
  ): Promise<unknown> {
    const port = this.#ports.get(index);
    if (port === undefined) {
      return Promise.reject(
        new RangeError(`Cannot reach isolate ${index}: no such isolate`),
      );
    }
    const id = this.#nextId++;
    const { promise, resolve, reject } = Promise.withResolvers<unknown>();
    this.#waiting.set(id, { resolve, reject });
    port.postMessage(envelope(id), { transfer });
    return promise;
  }

  async #receive(port: MessagePort, envelope: Envelope): Promise<void> {
    switch (envelope.kind) {
      case "chunk":
        this.#incoming.get(envelope.id)?.enqueue(envelope.bytes);
        return;
      case "end": {
        const controller = this.#incoming.get(envelope.id);
        this.#incoming.delete(envelope.id);
        if (envelope.error === undefined) controller?.close();
        else controller?.error(new TypeError(envelope.error));
        return;
      }
      case "cancel":
        void this.#outgoing.get(envelope.id)?.cancel().catch(() => {});
        return;
      case "answer":
      case "fail": {
        const waiting = this.#waiting.get(envelope.id);
        this.#waiting.delete(envelope.id);
        if (envelope.kind === "answer") waiting?.resolve(envelope.value);
        else waiting?.reject(new Error(envelope.message));
        return;
      }
      case "fetch":
      case "call": {
        // Registered before any await: its chunks are the next messages.
        const requestBody =
          envelope.kind === "fetch" && envelope.request.hasBody
            ? this.#receiveBody(port, envelope.id)
            : null;
        try {
          if (envelope.kind === "call") {
            const value = await this.#handlers!.call(
              envelope.op,
              envelope.argument,
            );
            port.postMessage({ kind: "answer", id: envelope.id, value });
            return;
          }
          const { request } = envelope;
          const response = await this.#handlers!.fetch(
            new Request(request.url, {
              method: request.method,
              headers: request.headers,
              body: requestBody,
            }),
          );
          const streaming = response.headers.get("content-type")
            ?.startsWith("text/event-stream");
          const body = response.body === null
            ? null
            : streaming
            ? response.body
            : await response.arrayBuffer();
          const value: WireResponse = {
            status: response.status,
            statusText: response.statusText,
            headers: [...response.headers],
            body,
          };
          port.postMessage({ kind: "answer", id: envelope.id, value }, {
            transfer: body ? [body] : [],
          });
        } catch (error) {
          port.postMessage({
            kind: "fail",
            id: envelope.id,
            message: (error as Error).message,
          });
        }
      }
    }
  }

  /** The body of request `id`, fed by the chunks that follow it. */
  #receiveBody(port: MessagePort, id: number): ReadableStream<Uint8Array> {
    return new ReadableStream<Uint8Array>({
      start: (controller) => {
        this.#incoming.set(id, controller);
      },
      cancel: () => {
        this.#incoming.delete(id);
        port.postMessage({ kind: "cancel", id } satisfies Envelope);
      },
    });
  }
}
