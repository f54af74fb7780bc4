/**
 * `breakwater/fetch`: a `fetch` with the same arguments and result as the
 * global one, that runs each request through a pipeline per origin (created on
 * first use, bounded in number), counts 5xx, 429, network errors and timeouts as
 * failures, retries only requests that may be sent again (honouring
 * `Retry-After`), and cancels the body of every response the caller does not
 * get. See docs/reference/fetch.md.
 *
 * ```ts
 * import { resilientFetch } from 'breakwater/fetch';
 *
 * const api = resilientFetch({ name: 'api' });
 * const response = await api('https://api.example.com/users/1');
 * ```
 * @packageDocumentation
 */
export {
  defaultFetchPolicies,
  FETCH_DEFAULTS,
  type FetchFunction,
  fetchRetry,
  type FetchRetryOptions,
  type ResilientFetch,
  resilientFetch,
  type ResilientFetchOptions,
} from './fetch.ts';
export {
  FailureResponseError,
  IDEMPOTENT_METHODS,
  isFailureResponseError,
  isFailureStatus,
  isFetchFailure,
  isIdempotent,
  isRetryableFetchError,
  type RequestFacts,
  retryAfterMs,
} from './classify.ts';
