/**
 * Group 5: HTTP over loopback. The same GET, body read, through the bare global
 * `fetch` and through `breakwater/fetch` (its default pipeline: retry, breaker,
 * timeout), to a keep-alive node:http server in another process. Rounds
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
async function startServer(): Promise<{ url: string; stop: () => void }> {
  const script = fileURLToPath(new URL('../http/server.ts', import.meta.url));
  const child = spawn(process.execPath, ['--disable-warning=ExperimentalWarning', script], { stdio: ['pipe', 'pipe', 'inherit'] });
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

/** Microseconds per request, `requests` of them, `inFlight` at a time, each body read. */
async function timeRequests(get: Get, url: string, requests: number, inFlight: number): Promise<number> {
  const one = async (): Promise<void> => {
    const response = await get(url);
    if (response.status !== 200) throw new Error(`status ${response.status}`);
    await response.text();
  };
  const started = performance.now();
  for (let done = 0; done < requests; done += inFlight) {
    await Promise.all(Array.from({ length: Math.min(inFlight, requests - done) }, one));
  }
  return ((performance.now() - started) * 1000) / requests;
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
      { id: 'bw', label: 'breakwater/fetch, default pipeline', library: 'breakwater', get: resilientFetch({ name: 'bench' }) },
      { id: 'bw+metrics', label: 'breakwater/fetch, default pipeline, metrics on', library: 'breakwater', get: observed },
    ];
    for (const inFlight of [1, 16]) {
      log(`  http: ${rounds} round(s) of ${requests.toLocaleString('en-US')} GETs per subject, ${inFlight} in flight`);
      for (const s of subjects) await timeRequests(s.get, server.url, quick ? 20 : 500, inFlight); // warm-up: connections, JIT
      const perRound = new Map<string, number[]>(subjects.map((s) => [s.id, []]));
      for (let round = 0; round < rounds; round++) {
        const order = round % 2 === 0 ? subjects : [...subjects].reverse();
        for (const s of order) perRound.get(s.id)!.push(checkSane(`http ${s.id}`, await timeRequests(s.get, server.url, requests, inFlight)));
      }
      const bare = perRound.get('bare')!;
      for (const s of subjects) {
        const samples = perRound.get(s.id)!;
        const ratios = samples.map((us, i) => us / bare[i]!);
        results.rows.push({
          group: 'http',
          id: `http.${s.id}.${inFlight}`,
          label: s.label,
          library: s.library,
          value: median(samples) * 1000,
          unit: 'ns',
          ...(s.id === 'bare' ? {} : { ratio: median(ratios), ratioTo: 'the bare fetch' }),
          extra: { inFlight, overheadNs: median(samples.map((us, i) => us - bare[i]!)) * 1000 },
          samples: samples.map((us) => us * 1000),
          note: `${inFlight} in flight`,
        });
      }
    }
    log('  http: the same calls around an in-memory fetch (no network): what breakwater/fetch itself costs');
    const answer = (): Promise<Response> => Promise.resolve(new Response('{"id":1}'));
    const inMemory: HttpSubject[] = [
      { id: 'memory.bare', label: 'in-memory fetch', library: 'baseline', get: answer },
      { id: 'memory.bw', label: 'breakwater/fetch around it, default pipeline', library: 'breakwater', get: resilientFetch({ name: 'bench-memory', fetch: answer }) },
    ];
    const memoryRequests = quick ? 1_000 : 20_000;
    for (const s of inMemory) await timeRequests(s.get, server.url, memoryRequests, 1);
    const memoryRounds = new Map<string, number[]>(inMemory.map((s) => [s.id, []]));
    for (let round = 0; round < (quick ? 1 : 10); round++) {
      for (const s of round % 2 === 0 ? inMemory : [...inMemory].reverse()) {
        memoryRounds.get(s.id)!.push(checkSane(`http ${s.id}`, await timeRequests(s.get, server.url, memoryRequests, 1)));
      }
    }
    const bareMemory = memoryRounds.get('memory.bare')!;
    for (const s of inMemory) {
      const samples = memoryRounds.get(s.id)!;
      results.rows.push({
        group: 'http',
        id: `http.${s.id}`,
        label: s.label,
        library: s.library,
        value: median(samples) * 1000,
        unit: 'ns',
        ...(s.id === 'memory.bare' ? {} : { ratio: median(samples.map((us, i) => us / bareMemory[i]!)), ratioTo: 'the in-memory fetch' }),
        extra: { inFlight: 1, overheadNs: median(samples.map((us, i) => us - bareMemory[i]!)) * 1000 },
        samples: samples.map((us) => us * 1000),
        note: 'no network',
      });
    }
  } catch (error) {
    results.failures.push({ group: 'http', id: 'http', message: (error as Error).stack ?? String(error) });
  } finally {
    server?.stop();
  }
}
