/**
 * The emulated `/batches` endpoint: a batch of API operations run in the background, one after
 * another, with the caller's own credentials, through the emulator's own routes; its status moves
 * pending → started → finished, and its results are a `.tar.gz` of JSON files, each a list of
 * `{status_code, operation_id, response}` with the answer as a JSON string (reference/apis.md §2.4;
 * the archive's layout beyond that is UNVERIFIED).
 */
import { randomBytes } from "node:crypto";
import { gzipSync } from "node:zlib";
import type { FastifyInstance } from "fastify";

export type BatchOperation = {
  method: "GET" | "POST" | "PUT" | "PATCH" | "DELETE";
  path: string;
  params?: Record<string, unknown>;
  body?: string;
  operation_id?: string;
};

export type Batch = {
  id: string;
  status: "pending" | "preprocessing" | "started" | "finalizing" | "finished";
  total_operations: number;
  finished_operations: number;
  errored_operations: number;
  submitted_at: string;
  completed_at: string;
  response_body_url: string;
  results: { status_code: number; operation_id: string | null; response: string }[];
};

/** A tar archive (ustar) of files, gzipped: what Mailchimp's batch results download is. */
export function tarGz(files: readonly { name: string; content: string }[]): Buffer {
  const blocks: Buffer[] = [];
  const mtime = Math.floor(Date.now() / 1000);
  for (const f of files) {
    const data = Buffer.from(f.content, "utf8");
    const header = Buffer.alloc(512);
    const put = (value: string, offset: number, length: number) => {
      header.write(value.slice(0, length), offset, "ascii");
    };
    const octal = (n: number, length: number) => n.toString(8).padStart(length - 1, "0") + "\0";
    put(f.name, 0, 100);
    put(octal(0o644, 8), 100, 8);
    put(octal(0, 8), 108, 8);
    put(octal(0, 8), 116, 8);
    put(octal(data.length, 12), 124, 12);
    put(octal(mtime, 12), 136, 12);
    put("        ", 148, 8);
    put("0", 156, 1);
    put("ustar\0", 257, 6);
    put("00", 263, 2);
    let sum = 0;
    for (const byte of header) sum += byte;
    put(`${sum.toString(8).padStart(6, "0")}\0 `, 148, 8);
    blocks.push(header, data, Buffer.alloc((512 - (data.length % 512)) % 512));
  }
  blocks.push(Buffer.alloc(1024));
  return gzipSync(Buffer.concat(blocks));
}

const OPERATION_METHODS = new Set(["GET", "POST", "PUT", "PATCH", "DELETE"]);

/** Checks a batch body; answers what is wrong, or the operations. */
export function parseOperations(body: unknown): BatchOperation[] | string {
  const ops = (body as { operations?: unknown } | null)?.operations;
  if (!Array.isArray(ops) || ops.length === 0) return "operations must be a non-empty array.";
  for (const [i, op] of ops.entries()) {
    const o = op as Partial<BatchOperation> | null;
    if (!o || typeof o.method !== "string" || !OPERATION_METHODS.has(o.method))
      return `operations[${i}].method must be one of GET, POST, PUT, PATCH, DELETE.`;
    if (typeof o.path !== "string" || !o.path.startsWith("/"))
      return `operations[${i}].path must be an API path such as /lists/{list_id}/members.`;
    if (o.body !== undefined && typeof o.body !== "string")
      return `operations[${i}].body must be a JSON string.`;
  }
  return ops as BatchOperation[];
}

export class BatchRunner {
  readonly batches = new Map<string, Batch>();
  private chain: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly app: FastifyInstance,
    private readonly now: () => Date,
    private readonly apiPrefix: string,
  ) {}

  reset(): void {
    this.batches.clear();
  }

  /** Queues a batch; it runs after the answer, one operation at a time, as the caller. */
  submit(operations: readonly BatchOperation[], authorization: string, origin: string): Batch {
    const id = randomBytes(5).toString("hex");
    const batch: Batch = {
      id,
      status: "pending",
      total_operations: operations.length,
      finished_operations: 0,
      errored_operations: 0,
      submitted_at: this.stamp(),
      completed_at: "",
      response_body_url: "",
      results: [],
    };
    this.batches.set(id, batch);
    const run = async () => {
      batch.status = "started";
      for (const op of operations) {
        const query = Object.entries(op.params ?? {})
          .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(String(v))}`)
          .join("&");
        const res = await this.app.inject({
          method: op.method,
          url: `${this.apiPrefix}${op.path}${query ? `?${query}` : ""}`,
          headers: {
            authorization,
            ...(op.body !== undefined ? { "content-type": "application/json" } : {}),
          },
          ...(op.body !== undefined ? { payload: op.body } : {}),
        });
        batch.finished_operations += 1;
        if (res.statusCode >= 400) batch.errored_operations += 1;
        batch.results.push({
          status_code: res.statusCode,
          operation_id: op.operation_id ?? null,
          response: res.body,
        });
      }
      batch.status = "finished";
      batch.completed_at = this.stamp();
      batch.response_body_url = `${origin}/__emulator/batches/${id}/response.tar.gz`;
    };
    this.chain = this.chain.then(() => new Promise((resolve) => setImmediate(resolve))).then(run, run);
    return batch;
  }

  /** Waits for every batch queued so far. */
  async idle(): Promise<void> {
    await this.chain;
  }

  archive(id: string): Buffer | undefined {
    const b = this.batches.get(id);
    if (!b || b.status !== "finished") return undefined;
    return tarGz([{ name: `${id}.json`, content: JSON.stringify(b.results) }]);
  }

  private stamp(): string {
    return this.now()
      .toISOString()
      .replace(/\.\d{3}Z$/, "+00:00");
  }
}
