// The README's walkthrough in TypeScript, over fetch, typed by the types
// openapi-typescript generates from openapi/openapi.yaml into ctrader.ts
// (see docs/clients.md). `go tool task sdk:typescript` generates them and
// type-checks this file.
import type { components, paths } from "./ctrader";

type Account = components["schemas"]["Account"];
type Rule = components["schemas"]["Rule"];
type EventDetail = components["schemas"]["EventDetail"];
type Problem = components["schemas"]["Problem"];

/** A problem document the server answered with. */
export class ProblemError extends Error {
  constructor(readonly problem: Problem) {
    super(`${problem.status} ${problem.code}: ${problem.detail ?? problem.title}`);
  }
}

export class Ctrader {
  constructor(
    private readonly baseUrl: string,
    private readonly token: string,
  ) {}

  private async call<T>(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<T> {
    const res = await fetch(this.baseUrl + path, {
      method,
      headers: { Authorization: `Bearer ${this.token}`, "Content-Type": "application/json", ...headers },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (!res.ok) {
      throw new ProblemError((await res.json()) as Problem);
    }
    return (await res.json()) as T;
  }

  createAccount(body: paths["/v1/accounts"]["post"]["requestBody"]["content"]["application/json"]): Promise<Account> {
    return this.call("POST", "/v1/accounts", body);
  }

  createRule(body: paths["/v1/rules"]["post"]["requestBody"]["content"]["application/json"]): Promise<Rule> {
    return this.call("POST", "/v1/rules", body);
  }

  /** Posts an event; the key makes a retry safe (same key, same body, nothing created twice). */
  createEvent(
    body: paths["/v1/events"]["post"]["requestBody"]["content"]["application/json"],
    idempotencyKey: string,
  ): Promise<paths["/v1/events"]["post"]["responses"]["202"]["content"]["application/json"]> {
    return this.call("POST", "/v1/events", body, { "Idempotency-Key": idempotencyKey });
  }

  getEvent(id: string): Promise<EventDetail> {
    return this.call("GET", `/v1/events/${encodeURIComponent(id)}`);
  }

  getAccount(id: string): Promise<Account> {
    return this.call("GET", `/v1/accounts/${encodeURIComponent(id)}`);
  }

  /** Reads the event until it is no longer pending. */
  async waitForEvent(id: string, timeoutMs = 30_000): Promise<EventDetail> {
    const deadline = Date.now() + timeoutMs;
    for (let delay = 20; ; delay = Math.min(2 * delay, 1000)) {
      const event = await this.getEvent(id);
      if (event.status !== "pending") {
        return event;
      }
      if (Date.now() + delay > deadline) {
        throw new Error(`event ${id} still pending after ${timeoutMs} ms`);
      }
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  }
}

export async function walkthrough(baseUrl: string, token: string): Promise<void> {
  const c = new Ctrader(baseUrl, token);

  // 1. An account. It starts pending; the account worker provisions it.
  const account = await c.createAccount({ name: "John Doe" });

  // 2. A rule: a won deal over 1000 emits vip_candidate and makes the account vip.
  await c.createRule({
    name: "big win",
    event_types: ["won"],
    condition: "event.payload.amount > 1000",
    actions: [
      { type: "emit_event", event_type: "vip_candidate", payload: { reason: "big win" } },
      { type: "set_account_status", status: "vip" },
    ],
  });

  // 3. A won event of 1500: 202, pending.
  const posted = await c.createEvent(
    { account_id: account.id, type: "won", payload: { amount: 1500 } },
    crypto.randomUUID(),
  );

  // 4. Processed, with its evaluation.
  const event = await c.waitForEvent(posted.id);
  for (const e of event.evaluations ?? []) {
    console.log(e.matched, e.actions?.map((a) => a.type));
  }

  // 5. The account: vip. won_total is a JSON number with every digit; JSON.parse
  // rounds it to a double, so read the raw text where the exact sum matters.
  const after = await c.getAccount(account.id);
  console.log(after.status, after.won_count, after.won_total);

  // A refused request.
  try {
    await c.createRule({ name: "typo", condition: "event.tpye == 'won'" });
  } catch (err) {
    if (err instanceof ProblemError) {
      console.log(err.problem.status, err.problem.errors?.map((e) => e.location));
    }
  }
}
