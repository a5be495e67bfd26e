/** Hooks for reading the API (with optional auto-refresh), running an action, and a ticking clock. */
import { useCallback, useEffect, useRef, useState } from "react";
import { ApiError, apiGet } from "./api";

export type Resource<T> = {
  data: T | undefined;
  /** The last load's error; `data` keeps the last good answer meanwhile. */
  error: ApiError | undefined;
  loading: boolean;
  /** When `data` was received (ms since the epoch). */
  receivedAt: number | undefined;
  reload: () => void;
};

type State<T> = {
  path: string | null;
  data: T | undefined;
  error: ApiError | undefined;
  receivedAt: number | undefined;
};

export const toApiError = (error: unknown): ApiError =>
  error instanceof ApiError ? error : new ApiError(0, "client_error", String(error));

/** GETs `path` (null: nothing), again every `refreshMs` when given; a new path starts empty. */
export function useResource<T>(path: string | null, refreshMs?: number): Resource<T> {
  const [state, setState] = useState<State<T>>({
    path,
    data: undefined,
    error: undefined,
    receivedAt: undefined,
  });
  const [generation, setGeneration] = useState(0);

  useEffect(() => {
    if (path === null) return undefined;
    let cancelled = false;
    let timer: number | undefined;
    const load = async (): Promise<void> => {
      // A hidden tab does not poll; it catches up when shown again (the next tick).
      if (refreshMs === undefined || !document.hidden)
        try {
          const data = await apiGet<T>(path);
          if (!cancelled) setState({ path, data, error: undefined, receivedAt: Date.now() });
        } catch (error) {
          if (!cancelled)
            setState((s) =>
              s.path === path
                ? { ...s, error: toApiError(error) }
                : { path, data: undefined, error: toApiError(error), receivedAt: undefined },
            );
        }
      if (!cancelled && refreshMs !== undefined)
        timer = window.setTimeout(() => {
          void load();
        }, refreshMs);
    };
    void load();
    return () => {
      cancelled = true;
      window.clearTimeout(timer);
    };
  }, [path, refreshMs, generation]);

  const reload = useCallback(() => {
    setGeneration((g) => g + 1);
  }, []);
  const current = state.path === path;
  return {
    data: current ? state.data : undefined,
    error: current ? state.error : undefined,
    loading: path !== null && (!current || (state.data === undefined && state.error === undefined)),
    receivedAt: current ? state.receivedAt : undefined,
    reload,
  };
}

export type Action<T> = {
  run: (work: () => Promise<T>) => Promise<T | undefined>;
  pending: boolean;
  error: ApiError | undefined;
  result: T | undefined;
  reset: () => void;
};

/** A button's request: pending while it runs, then its result or its error. */
export function useAction<T>(): Action<T> {
  const [state, setState] = useState<{ pending: boolean; error?: ApiError; result?: T }>({ pending: false });
  const mounted = useRef(true);
  useEffect(() => {
    mounted.current = true;
    return () => {
      mounted.current = false;
    };
  }, []);
  const run = useCallback(async (work: () => Promise<T>): Promise<T | undefined> => {
    setState({ pending: true });
    try {
      const result = await work();
      if (mounted.current) setState({ pending: false, result });
      return result;
    } catch (error) {
      if (mounted.current) setState({ pending: false, error: toApiError(error) });
      return undefined;
    }
  }, []);
  const reset = useCallback(() => {
    setState({ pending: false });
  }, []);
  return { run, pending: state.pending, error: state.error, result: state.result, reset };
}

/** The current time, updated every `intervalMs`, for "12 s ago" and "in 3 s". */
export function useNow(intervalMs = 1_000): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    const timer = window.setInterval(() => {
      setNow(Date.now());
    }, intervalMs);
    return () => {
      window.clearInterval(timer);
    };
  }, [intervalMs]);
  return now;
}
