/**
 * A store split into shards, one per isolate (`PARALLEL` with a store that
 * is not shared): this isolate's shard, and the others reached by message.
 *
 * @module
 */

import { shardOfId } from "../orders/order_id.ts";
import type {
  CreateOptions,
  CreateResult,
  ListOptions,
  ListPage,
  OrderRepository,
  Transition,
} from "../orders/order_store.ts";
import type { NewOrder, Order, OrderStatus } from "../orders/order.ts";
import { zeroStatusCounts } from "../orders/order.ts";

/** The reads another isolate's shard answers. */
export type RemoteShard = Pick<
  OrderRepository,
  "get" | "list" | "countByStatus"
>;

/**
 * This isolate's view of every shard. Writes go to this isolate's shard:
 * a request for an order of another shard is sent to that shard's isolate
 * before it gets here, so that every change to an order happens where it
 * lives. Reads that name an order go to its shard; a list merges every
 * shard's, in id order, so that paging returns each order exactly once.
 */
export class ShardedRepository implements OrderRepository {
  readonly #local: OrderRepository;
  readonly #index: number;
  readonly #count: number;
  readonly #remote: (index: number) => RemoteShard;

  /**
   * Shard `index` (from 0) of `count`, held in `local`; `remote(i)` reads
   * shard `i`.
   */
  constructor(
    local: OrderRepository,
    options: {
      index: number;
      count: number;
      remote: (index: number) => RemoteShard;
    },
  ) {
    this.#local = local;
    this.#index = options.index;
    this.#count = options.count;
    this.#remote = options.remote;
  }

  create(input: NewOrder, options?: CreateOptions): Promise<CreateResult> {
    return this.#local.create(input, options);
  }

  transition(id: string, change: Transition): Promise<Order> {
    return this.#local.transition(id, change);
  }

  getByIdempotencyKey(key: string): Promise<Order | undefined> {
    return this.#local.getByIdempotencyKey(key);
  }

  get(id: string): Promise<Order | undefined> {
    const shard = shardOfId(id, this.#count);
    if (shard === undefined) return Promise.resolve(undefined);
    return shard === this.#index
      ? this.#local.get(id)
      : this.#remote(shard).get(id);
  }

  async list(options: ListOptions): Promise<ListPage> {
    const pages = await Promise.all(
      this.#shards().map((shard) => shard.list(options)),
    );
    const orders = pages.flatMap((page) => page.orders)
      .sort((a, b) => a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
    return {
      orders: orders.slice(0, options.limit),
      hasMore: orders.length > options.limit ||
        pages.some((page) => page.hasMore),
    };
  }

  async countByStatus(): Promise<Record<OrderStatus, number>> {
    const counts = zeroStatusCounts();
    for (
      const shard of await Promise.all(
        this.#shards().map((shard) => shard.countByStatus()),
      )
    ) {
      for (const status of Object.keys(counts) as OrderStatus[]) {
        counts[status] += shard[status];
      }
    }
    return counts;
  }

  close(): Promise<void> {
    return this.#local.close();
  }

  #shards(): RemoteShard[] {
    return Array.from(
      { length: this.#count },
      (_, index) => index === this.#index ? this.#local : this.#remote(index),
    );
  }
}
