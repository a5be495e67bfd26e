/**
 * The `code` an error carries (Node's system errors such as `EADDRINUSE`, PostgreSQL's SQLSTATE
 * such as `3D000`), or undefined when it carries none.
 */
export const errorCode = (error: unknown): string | undefined =>
  typeof error === "object" && error !== null && "code" in error && typeof error.code === "string"
    ? error.code
    : undefined;

/** What an error says (its message), or the thrown value as text when it is not an Error. */
export const errorMessage = (error: unknown): string =>
  error instanceof Error ? error.message : String(error);
