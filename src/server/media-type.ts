/**
 * A request's media type as a page compares it: the `Content-Type` header without its parameters,
 * in lower case (media types are case-insensitive, RFC 9110 §8.3.1: a mail system may send
 * `Application/X-WWW-Form-Urlencoded`). Empty when there is none.
 */
export function mediaType(header: string | undefined): string {
  return (header ?? "").split(";")[0]!.trim().toLowerCase();
}
