import assert from "node:assert/strict";
import { IsolateMesh } from "../lib/isolate_mesh.ts";

/** Two ends of a mesh in one isolate: isolate 1 and isolate 2. */
function pair() {
  const { port1, port2 } = new MessageChannel();
  const one = new IsolateMesh(new Map([[2, port1]]));
  const two = new IsolateMesh(new Map([[1, port2]]));
  return { one, two, close: () => (one.close(), two.close()) };
}

Deno.test("IsolateMesh.fetch() hands a request, its body streamed, to the other isolate and its answer back", async () => {
  const { one, two, close } = pair();
  try {
    two.serve({
      fetch: async (request) =>
        new Response(
          `${request.method} ${new URL(request.url).pathname} ${await request
            .text()} ${request.headers.get("idempotency-key")}`,
          { status: 201, headers: { "x-from": "two" } },
        ),
      call: () => Promise.resolve(null),
    });
    const response = await one.fetch(
      2,
      new Request("http://localhost/orders", {
        method: "POST",
        headers: { "idempotency-key": "k1" },
        body: "hello",
      }),
    );
    assert.equal(response.status, 201);
    assert.equal(response.headers.get("x-from"), "two");
    assert.equal(await response.text(), "POST /orders hello k1");
  } finally {
    close();
  }
});

Deno.test("IsolateMesh.fetch(): an event stream's answer arrives chunk by chunk, as it is written", async () => {
  const { one, two, close } = pair();
  const more = Promise.withResolvers<void>();
  try {
    two.serve({
      fetch: () =>
        new Response(
          new ReadableStream({
            async start(controller) {
              controller.enqueue(new TextEncoder().encode("first\n"));
              await more.promise;
              controller.enqueue(new TextEncoder().encode("second\n"));
              controller.close();
            },
          }),
          { headers: { "content-type": "text/event-stream" } },
        ),
      call: () => Promise.resolve(null),
    });
    const response = await one.fetch(2, new Request("http://localhost/events"));
    const reader = response.body!.pipeThrough(new TextDecoderStream())
      .getReader();
    assert.equal((await reader.read()).value, "first\n");
    more.resolve();
    assert.equal((await reader.read()).value, "second\n");
    assert.equal((await reader.read()).done, true);
  } finally {
    close();
  }
});

Deno.test("IsolateMesh.call() answers data calls, and an error there fails the call with its message", async () => {
  const { one, two, close } = pair();
  try {
    two.serve({
      fetch: () => new Response(null),
      call: (op, argument) =>
        op === "double"
          ? Promise.resolve((argument as number) * 2)
          : Promise.reject(new Error(`no op ${op}`)),
    });
    assert.equal(await one.call(2, "double", 21), 42);
    await assert.rejects(one.call(2, "triple", 1), /no op triple/);
    await assert.rejects(one.call(3, "double", 1), /no such isolate/);
  } finally {
    close();
  }
});

Deno.test("IsolateMesh.fetch(): a body sent in pieces over time arrives whole, and one cut short fails the reading on the other side", async () => {
  const { one, two, close } = pair();
  try {
    two.serve({
      fetch: async (request) => {
        try {
          return new Response(`got ${await request.text()}`);
        } catch (error) {
          return new Response(`cut: ${(error as Error).name}`, { status: 400 });
        }
      },
      call: () => Promise.resolve(null),
    });
    const pieces = (cut: boolean) =>
      new ReadableStream<Uint8Array>({
        async start(controller) {
          for (const piece of ["a", "b", "c"]) {
            controller.enqueue(new TextEncoder().encode(piece));
            await new Promise((resolve) => setTimeout(resolve, 5));
          }
          if (cut) controller.error(new Error("connection reset"));
          else controller.close();
        },
      });
    const whole = await one.fetch(
      2,
      new Request("http://localhost/orders", {
        method: "POST",
        body: pieces(false),
      }),
    );
    assert.equal(await whole.text(), "got abc");
    const cut = await one.fetch(
      2,
      new Request("http://localhost/orders", {
        method: "POST",
        body: pieces(true),
      }),
    );
    assert.equal(cut.status, 400);
    assert.match(await cut.text(), /^cut: /);
  } finally {
    close();
  }
});
