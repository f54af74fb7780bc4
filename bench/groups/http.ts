/**
 * Group 5: HTTP over loopback. The same GET, body read, through the bare global
 * `fetch` and through `breakwater/fetch` (its default pipeline: retry, breaker,
 * timeout), to a keep-alive node:http server in another process; and the same
 * GET to that server with and without `breakwater/http`'s gate. Rounds
 * alternate the subjects; each figure is the median over rounds, and each ratio
 * the median of the per-round ratios to the bare fetch of the same round.
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Registry } from 'prom-client';
import { resilientFetch } from '../../src/fetch/index.ts';
import { prometheusMetrics } from '../../src/prometheus/index.ts';
import { median, type Profile } from '../lib/measure.ts';
import { checkSane, type RunResults } from '../lib/results.ts';
import type { Library } from '../subjects/subject.ts';

type Get = (url: string) => Promise<Response>;

interface HttpSubject {
  readonly id: string;
  readonly label: string;
  readonly library: Library;
  readonly get: Get;
}

/** Starts the server process; resolves with its URL and a function that stops it. */
async function startServer(args: readonly string[] = []): Promise<{ url: string; stop: () => void }> {
  const script = fileURLToPath(new URL('../http/server.ts', import.meta.url));
  const child = spawn(process.execPath, ['--disable-warning=ExperimentalWarning', script, ...args], { stdio: ['pipe', 'pipe', 'inherit'] });
  const stop = (): void => {
    child.stdin.end();
    setTimeout(() => child.kill(), 2_000).unref();
  };
  const line = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the benchmark server did not start within 10 s')), 10_000);
    createInterface({ input: child.stdout }).once('line', (first) => {
      clearTimeout(timer);
      resolve(first);
    });
    child.once('exit', (code) => reject(new Error(`the benchmark server exited (${code})`)));
  }).catch((error: unknown) => {
    stop();
    throw error;
  });
  return { url: `http://127.0.0.1:${Number(line)}/users/1`, stop };
}

/** Per request: wall-clock and this process's CPU time, in µs. */
interface Timing {
  readonly wallUs: number;
  readonly cpuUs: number;
}

/**
 * `requests` requests, `inFlight` at a time, each body read. The CPU time is the
 * client's own (user + system): on a shared machine it moves much less than the
 * wall clock with the load of other processes.
 */
async function timeRequests(get: Get, url: string, requests: number, inFlight: number): Promise<Timing> {
  const one = async (): Promise<void> => {
    const response = await get(url);
    if (response.status !== 200) throw new Error(`status ${response.status}`);
    await response.text();
  };
  const started = performance.now();
  const cpu = process.cpuUsage();
  for (let done = 0; done < requests; done += inFlight) {
    await Promise.all(Array.from({ length: Math.min(inFlight, requests - done) }, one));
  }
  const used = process.cpuUsage(cpu);
  return { wallUs: ((performance.now() - started) * 1000) / requests, cpuUs: (used.user + used.system) / requests };
}

/** One row per subject: medians over rounds, ratios and differences paired by round. */
function rows(results: RunResults, subjects: readonly HttpSubject[], perRound: Map<string, Timing[]>, bareId: string, inFlight: number, note: string): void {
  const bare = perRound.get(bareId)!;
  for (const s of subjects) {
    const samples = perRound.get(s.id)!;
    const wall = samples.map((t) => t.wallUs);
    const cpu = samples.map((t) => t.cpuUs);
    results.rows.push({
      group: 'http',
      id: `http.${s.id}.${inFlight}`,
      label: s.label,
      library: s.library,
      value: median(wall) * 1000,
      unit: 'ns',
      ...(s.id === bareId ? {} : { ratio: median(samples.map((t, i) => t.cpuUs / bare[i]!.cpuUs)), ratioTo: 'the bare subject, client CPU time' }),
      extra: {
        inFlight,
        cpuNs: median(cpu) * 1000,
        wallRatio: median(samples.map((t, i) => t.wallUs / bare[i]!.wallUs)),
        addedCpuNs: median(samples.map((t, i) => t.cpuUs - bare[i]!.cpuUs)) * 1000,
      },
      samples: wall.map((us) => us * 1000),
      note,
    });
  }
}

/** Measures the HTTP group. */
export async function httpGroup(profile: Profile, results: RunResults, log: (line: string) => void): Promise<void> {
  const quick = profile.name === 'quick';
  // Many short rounds, alternating the subjects: a shared machine's drift hits all of them alike.
  const requests = quick ? 50 : 200;
  const rounds = quick ? 1 : 40;
  let server: { url: string; stop: () => void } | undefined;
  try {
    server = await startServer();
    const registry = new Registry();
    const observed = resilientFetch({ name: 'bench-metrics' });
    const metrics = prometheusMetrics({ registry });
    observed.pipelines.onCreate(({ pipeline }) => metrics.attach(pipeline));
    const subjects: HttpSubject[] = [
      { id: 'bare', label: 'global fetch', library: 'baseline', get: (url) => fetch(url) },
      // What any fetch that can time out pays in undici: a signal to listen to.
      { id: 'bare+signal', label: 'global fetch with an AbortSignal', library: 'baseline', get: (url) => fetch(url, { signal: new AbortController().signal }) },
      { id: 'bw', label: 'breakwater/fetch, default pipeline', library: 'breakwater', get: resilientFetch({ name: 'bench' }) },
      { id: 'bw+metrics', label: 'breakwater/fetch, default pipeline, metrics on', library: 'breakwater', get: observed },
    ];
    for (const inFlight of [1, 16]) {
      log(`  http: ${rounds} round(s) of ${requests.toLocaleString('en-US')} GETs per subject, ${inFlight} in flight`);
      for (const s of subjects) await timeRequests(s.get, server.url, quick ? 20 : 500, inFlight); // warm-up: connections, JIT
      const perRound = new Map<string, Timing[]>(subjects.map((s) => [s.id, []]));
      for (let round = 0; round < rounds; round++) {
        const order = round % 2 === 0 ? subjects : [...subjects].reverse();
        for (const s of order) {
          const t = await timeRequests(s.get, server.url, requests, inFlight);
          checkSane(`http ${s.id} wall`, t.wallUs);
          checkSane(`http ${s.id} cpu`, t.cpuUs);
          perRound.get(s.id)!.push(t);
        }
      }
      rows(results, subjects, perRound, 'bare', inFlight, `${inFlight} in flight`);
    }
    log('  http: the same calls around an in-memory fetch (no network): what breakwater/fetch itself costs');
    const answer = (): Promise<Response> => Promise.resolve(new Response('{"id":1}'));
    const inMemory: HttpSubject[] = [
      { id: 'memory.bare', label: 'in-memory fetch', library: 'baseline', get: answer },
      { id: 'memory.bw', label: 'breakwater/fetch around it, default pipeline', library: 'breakwater', get: resilientFetch({ name: 'bench-memory', fetch: answer }) },
    ];
    const memoryRequests = quick ? 1_000 : 20_000;
    for (const s of inMemory) await timeRequests(s.get, server.url, memoryRequests, 1);
    const memoryRounds = new Map<string, Timing[]>(inMemory.map((s) => [s.id, []]));
    for (let round = 0; round < (quick ? 1 : 10); round++) {
      for (const s of round % 2 === 0 ? inMemory : [...inMemory].reverse()) {
        const t = await timeRequests(s.get, server.url, memoryRequests, 1);
        checkSane(`http ${s.id} cpu`, t.cpuUs);
        memoryRounds.get(s.id)!.push(t);
      }
    }
    rows(results, inMemory, memoryRounds, 'memory.bare', 1, 'no network');
  } catch (error) {
    results.failures.push({ group: 'http', id: 'http', message: (error as Error).stack ?? String(error) });
  } finally {
    server?.stop();
  }
  await gateRows(profile, results, log);
}

/** The server's CPU time so far, in µs (its `/__cpu` route). */
async function serverCpuUs(url: string): Promise<number> {
  return Number(await (await fetch(new URL('/__cpu', url))).text());
}

/**
 * The same GETs (global fetch, 16 in flight) to the benchmark server as it is
 * and wrapped in a `breakwater/http` gate that admits everything: what the
 * gate costs the server per request, in the server's own CPU time, and what
 * it adds to the request's wall-clock time. Rounds alternate the two servers.
 */
async function gateRows(profile: Profile, results: RunResults, log: (line: string) => void): Promise<void> {
  const quick = profile.name === 'quick';
  const requests = quick ? 100 : 1_000;
  const rounds = quick ? 1 : 20;
  const inFlight = 16;
  const servers: { id: string; label: string; library: Library; url: string; stop: () => void }[] = [];
  try {
    servers.push({ id: 'server.bare', label: 'node:http server, no gate', library: 'baseline', ...(await startServer()) });
    servers.push({ id: 'server.gated', label: 'node:http server behind httpGate (limit never reached)', library: 'breakwater', ...(await startServer(['--gated'])) });
    log(`  http: ${rounds} round(s) of ${requests.toLocaleString('en-US')} GETs to a server with and without the gate, ${inFlight} in flight`);
    const get: Get = (url) => fetch(url);
    for (const s of servers) await timeRequests(get, s.url, quick ? 50 : 500, inFlight); // warm-up
    const wall = new Map<string, number[]>(servers.map((s) => [s.id, []]));
    const cpu = new Map<string, number[]>(servers.map((s) => [s.id, []]));
    for (let round = 0; round < rounds; round++) {
      for (const s of round % 2 === 0 ? servers : [...servers].reverse()) {
        const before = await serverCpuUs(s.url);
        const t = await timeRequests(get, s.url, requests, inFlight);
        const serverUs = ((await serverCpuUs(s.url)) - before) / requests;
        checkSane(`http ${s.id} wall`, t.wallUs);
        checkSane(`http ${s.id} server cpu`, serverUs);
        wall.get(s.id)!.push(t.wallUs);
        cpu.get(s.id)!.push(serverUs);
      }
    }
    const bareCpu = cpu.get('server.bare')!;
    const bareWall = wall.get('server.bare')!;
    for (const s of servers) {
      const w = wall.get(s.id)!;
      const c = cpu.get(s.id)!;
      results.rows.push({
        group: 'http',
        id: `http.${s.id}.${inFlight}`,
        label: s.label,
        library: s.library,
        value: median(w) * 1000,
        unit: 'ns',
        ...(s.id === 'server.bare' ? {} : { ratio: median(c.map((v, i) => v / bareCpu[i]!)), ratioTo: 'the server without the gate, server CPU time' }),
        extra: {
          inFlight,
          serverCpuNs: median(c) * 1000,
          wallRatio: median(w.map((v, i) => v / bareWall[i]!)),
          addedServerCpuNs: median(c.map((v, i) => v - bareCpu[i]!)) * 1000,
        },
        samples: w.map((us) => us * 1000),
        note: `${inFlight} in flight, server CPU per request`,
      });
    }
  } catch (error) {
    results.failures.push({ group: 'http', id: 'http.gate', message: (error as Error).stack ?? String(error) });
  } finally {
    for (const s of servers) s.stop();
  }
}
