/**
 * The isolates of one process talking to each other directly: one
 * `MessageChannel` for each pair, set up by the main isolate at start. A
 * request for an order another isolate owns hops to it as a message and
 * is answered there; nothing is shared under a lock.
 *
 * @module
 */

/** A request as it crosses to another isolate; its body is transferred. */
export interface WireRequest {
  method: string;
  url: string;
  headers: Array<[string, string]>;
  body: ReadableStream<Uint8Array> | null;
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
  | { kind: "fail"; id: number; message: string };

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
  // listen a moment before it does).
  #early: Array<[MessagePort, Envelope]> = [];

  /** The mesh over `ports`, by the index of the isolate at each port's other end. */
  constructor(ports: Map<number, MessagePort>) {
    this.#ports = ports;
    for (const port of ports.values()) {
      port.onmessage = (event: MessageEvent<Envelope>) =>
        void this.#receive(port, event.data);
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
      body,
    };
    const answer = await this.#send(
      index,
      (id) => ({ kind: "fetch", id, request: wire }),
      body ? [body] : [],
    ) as WireResponse;
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
        if (this.#handlers === undefined) {
          this.#early.push([port, envelope]);
          return;
        }
        try {
          if (envelope.kind === "call") {
            const value = await this.#handlers.call(
              envelope.op,
              envelope.argument,
            );
            port.postMessage({ kind: "answer", id: envelope.id, value });
            return;
          }
          const { request } = envelope;
          const response = await this.#handlers.fetch(
            new Request(request.url, {
              method: request.method,
              headers: request.headers,
              body: request.body,
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
}
