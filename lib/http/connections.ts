/**
 * Which TCP connections this process holds on a port, read from Linux's
 * `/proc`: `Deno.serve` does not say which connections it has open.
 *
 * @module
 */

const LISTEN_STATE = "0A";

/**
 * The remote ports of the connections this process holds on `localPort`
 * (every state but LISTEN, so also those the client has already closed),
 * or `undefined` where `/proc` cannot be read (another OS, no permission,
 * no descriptor free).
 *
 * @example
 * ```ts
 * import { connectionRemotePorts } from "./connections.ts";
 * const ports = connectionRemotePorts(8080); // e.g. [53210, 53212]
 * ```
 */
export function connectionRemotePorts(
  localPort: number,
): number[] | undefined {
  try {
    // Sockets of other processes may share the port (SO_REUSEPORT): only
    // those whose inode is one of our descriptors count.
    const ours = new Set<string>();
    for (const entry of Deno.readDirSync("/proc/self/fd")) {
      let link: string;
      try {
        link = Deno.readLinkSync(`/proc/self/fd/${entry.name}`);
      } catch {
        continue; // closed while we looked
      }
      const inode = /^socket:\[(\d+)\]$/.exec(link)?.[1];
      if (inode !== undefined) ours.add(inode);
    }
    const ports: number[] = [];
    for (const table of ["/proc/self/net/tcp", "/proc/self/net/tcp6"]) {
      let text: string;
      try {
        text = Deno.readTextFileSync(table);
      } catch (error) {
        if (error instanceof Deno.errors.NotFound) continue; // no IPv6
        throw error;
      }
      for (const line of text.split("\n").slice(1)) {
        // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
        const fields = line.trim().split(/\s+/);
        const [local, remote, state, inode] = [
          fields[1],
          fields[2],
          fields[3],
          fields[9],
        ];
        if (!local || !remote || !inode || state === LISTEN_STATE) continue;
        if (
          parseInt(local.slice(local.lastIndexOf(":") + 1), 16) !== localPort
        ) {
          continue;
        }
        if (!ours.has(inode)) continue;
        ports.push(parseInt(remote.slice(remote.lastIndexOf(":") + 1), 16));
      }
    }
    return ports;
  } catch {
    return undefined;
  }
}
