/**
 * A small history router: the server answers every page path with index.html, so the address bar
 * holds real paths (/runs/run_…, /people?q=ada) that can be bookmarked and shared.
 */
import { useSyncExternalStore, type AnchorHTMLAttributes, type MouseEvent, type ReactNode } from "react";

export type Route =
  | { page: "overview" }
  | { page: "runs" }
  | { page: "run"; id: string }
  | { page: "people"; q: string }
  | { page: "person"; id: string }
  | { page: "reconciliation" }
  | { page: "review"; status: "open" | "resolved" | "dismissed" }
  | { page: "not_found"; path: string };

export function parseRoute(pathname: string, search: string): Route {
  const params = new URLSearchParams(search);
  const parts = pathname
    .split("/")
    .filter((p) => p !== "")
    .map(decodeURIComponent);
  const [first, second] = parts;
  if (parts.length === 0) return { page: "overview" };
  if (first === "runs" && parts.length === 1) return { page: "runs" };
  if (first === "runs" && second !== undefined && parts.length === 2) return { page: "run", id: second };
  if (first === "people" && parts.length === 1) return { page: "people", q: params.get("q") ?? "" };
  if (first === "people" && second !== undefined && parts.length === 2) return { page: "person", id: second };
  if (first === "reconciliation" && parts.length === 1) return { page: "reconciliation" };
  if (first === "review" && parts.length === 1) {
    const status = params.get("status");
    return { page: "review", status: status === "resolved" || status === "dismissed" ? status : "open" };
  }
  return { page: "not_found", path: pathname };
}

export function hrefOf(route: Route): string {
  switch (route.page) {
    case "overview":
      return "/";
    case "runs":
      return "/runs";
    case "run":
      return `/runs/${encodeURIComponent(route.id)}`;
    case "people":
      return route.q === "" ? "/people" : `/people?q=${encodeURIComponent(route.q)}`;
    case "person":
      return `/people/${encodeURIComponent(route.id)}`;
    case "reconciliation":
      return "/reconciliation";
    case "review":
      return route.status === "open" ? "/review" : `/review?status=${route.status}`;
    case "not_found":
      return route.path;
  }
}

const listeners = new Set<() => void>();
const subscribe = (listener: () => void): (() => void) => {
  listeners.add(listener);
  window.addEventListener("popstate", listener);
  return () => {
    listeners.delete(listener);
    window.removeEventListener("popstate", listener);
  };
};
const snapshot = (): string => window.location.pathname + window.location.search;

export function navigate(href: string, options: { replace?: boolean } = {}): void {
  if (href === snapshot()) return;
  if (options.replace === true) window.history.replaceState(null, "", href);
  else window.history.pushState(null, "", href);
  window.scrollTo(0, 0);
  for (const listener of listeners) listener();
}

/** The current route; re-renders on navigation and on the browser's back and forward. */
export function useRoute(): Route {
  const location = useSyncExternalStore(subscribe, snapshot);
  const at = location.indexOf("?");
  return parseRoute(at < 0 ? location : location.slice(0, at), at < 0 ? "" : location.slice(at));
}

type LinkProps = Omit<AnchorHTMLAttributes<HTMLAnchorElement>, "href"> & { to: Route; children: ReactNode };

/** An ordinary link (open in a new tab works) that navigates in place on a plain click. */
export function Link({ to, children, onClick, ...rest }: LinkProps): ReactNode {
  const href = hrefOf(to);
  const click = (event: MouseEvent<HTMLAnchorElement>): void => {
    onClick?.(event);
    if (event.defaultPrevented || event.button !== 0) return;
    if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    event.preventDefault();
    navigate(href);
  };
  return (
    <a href={href} onClick={click} {...rest}>
      {children}
    </a>
  );
}
