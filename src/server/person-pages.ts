/**
 * The pages a person reaches from an email: the one-click unsubscribe URL (RFC 8058). `GET` shows a
 * confirmation page (mail scanners fetch links, so a GET never unsubscribes); `POST` with the body
 * `List-Unsubscribe=One-Click` (form-encoded or multipart) unsubscribes from all email, recorded in
 * the ledger before the answer, without a cookie, a session or a redirect, and idempotently. A
 * forged, expired or revoked link gets a 4xx page that says so. Pages are plain HTML (no script),
 * in English or French by the browser's Accept-Language.
 */
import Busboy from "busboy";
import type { FastifyInstance, FastifyRequest } from "fastify";
import type { Result } from "../core/result";
import {
  checkLink,
  recordOneClick,
  type LinkSigner,
  type OneClickResult,
  type TokenProblem,
} from "../runs/personal-links";
import type { StoreSession } from "../store/ports";

export type PersonPagesDeps = {
  store: StoreSession;
  /** The link signer, or why personal links are not available (every link page then says so). */
  links: Result<LinkSigner, string>;
  now: () => Date;
  /** Called once a person's consent changed here, to carry it to every system now. */
  onConsentRecorded: (contactId: string) => void;
};

/** The one-click path: `/l/u/<token>`. */
export const ONE_CLICK_PATH = "/l/u/:token";
/** Bodies here are a few bytes; anything larger is not a one-click request. */
const BODY_LIMIT = 16 * 1024;

type Lang = "en" | "fr";
const TEXT: Record<Lang, Record<string, string>> = {
  en: {
    title: "Unsubscribe",
    confirm: "Unsubscribe from all email from this organisation?",
    button: "Unsubscribe",
    done: "You are unsubscribed from all email from this organisation.",
    already: "You were already unsubscribed from all email from this organisation.",
    done_more: "Every system the organisation uses to email you is told within minutes.",
    malformed:
      "This link is not complete. Copy the whole link from the email, or use the link in a newer email.",
    forged: "This link is not valid.",
    expired: "This link has expired. Use the unsubscribe link in a newer email.",
    revoked: "This link is no longer valid. Use the unsubscribe link in a newer email.",
    unknown_person: "This link is no longer valid.",
    unavailable:
      "Unsubscribing through this page is not available right now. Reply to the email to unsubscribe.",
    bad_body: "This request is not a one-click unsubscribe (expected List-Unsubscribe=One-Click).",
  },
  fr: {
    title: "Désabonnement",
    confirm: "Vous désabonner de tous les courriels de cet organisme ?",
    button: "Me désabonner",
    done: "Vous êtes désabonné(e) de tous les courriels de cet organisme.",
    already: "Vous étiez déjà désabonné(e) de tous les courriels de cet organisme.",
    done_more: "Chaque système que l'organisme utilise pour vous écrire en est informé en quelques minutes.",
    malformed:
      "Ce lien est incomplet. Copiez le lien entier du courriel, ou utilisez celui d'un courriel plus récent.",
    forged: "Ce lien n'est pas valide.",
    expired: "Ce lien a expiré. Utilisez le lien de désabonnement d'un courriel plus récent.",
    revoked: "Ce lien n'est plus valide. Utilisez le lien de désabonnement d'un courriel plus récent.",
    unknown_person: "Ce lien n'est plus valide.",
    unavailable:
      "Le désabonnement par cette page n'est pas disponible pour le moment. Répondez au courriel pour vous désabonner.",
    bad_body: "Cette requête n'est pas un désabonnement en un clic (List-Unsubscribe=One-Click attendu).",
  },
};

function langOf(request: FastifyRequest): Lang {
  const value = request.headers["accept-language"] ?? "";
  const first = (value.split(",")[0] ?? "").trim().toLowerCase();
  return first.startsWith("fr") ? "fr" : "en";
}

const escapeHtml = (s: string): string =>
  s.replace(
    /[&<>"']/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c] ?? c,
  );

function page(lang: Lang, body: string): string {
  return `<!doctype html>
<html lang="${lang}"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex"><title>${escapeHtml(TEXT[lang]["title"] ?? "")}</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:34rem;margin:3rem auto;padding:0 1rem;color:#1b2430}
button{font:inherit;padding:.5rem 1.2rem;border-radius:6px;border:1px solid #1d4ed8;background:#1d4ed8;color:#fff;cursor:pointer}
button:focus{outline:3px solid #93c5fd;outline-offset:2px}</style></head>
<body><main>${body}</main></body></html>`;
}

const STATUS: Record<TokenProblem, number> = {
  malformed: 400,
  forged: 403,
  expired: 410,
  revoked: 410,
  unknown_person: 410,
};

/** `List-Unsubscribe=One-Click` in a form-encoded or multipart body, as RFC 8058 sends it. */
async function isOneClick(request: FastifyRequest): Promise<boolean> {
  const type = request.headers["content-type"] ?? "";
  const raw = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
  if (type.startsWith("application/x-www-form-urlencoded"))
    return new URLSearchParams(raw.toString("utf8")).get("List-Unsubscribe") === "One-Click";
  if (!type.startsWith("multipart/form-data")) return false;
  return new Promise((resolve) => {
    let found = false;
    try {
      const parser = Busboy({
        headers: { "content-type": type },
        limits: { fields: 20, files: 0, fieldSize: 1024 },
      });
      parser.on("field", (name, value) => {
        if (name === "List-Unsubscribe" && value === "One-Click") found = true;
      });
      parser.on("close", () => {
        resolve(found);
      });
      parser.on("error", () => {
        resolve(false);
      });
      parser.end(raw);
    } catch {
      resolve(false);
    }
  });
}

export function registerPersonPages(app: FastifyInstance, deps: PersonPagesDeps): void {
  void app.register((scope, _opts, done) => {
    // Only these bodies are taken, as bytes, never JSON: the one-click request and the page's form.
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser(
      ["application/x-www-form-urlencoded", "multipart/form-data"],
      { parseAs: "buffer", bodyLimit: BODY_LIMIT },
      (_request, body, next) => {
        next(null, body);
      },
    );
    scope.addHook("onSend", async (_request, reply) => {
      void reply
        .header("cache-control", "no-store")
        .header("referrer-policy", "no-referrer")
        .header("x-robots-tag", "noindex")
        .header(
          "content-security-policy",
          "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
        );
    });

    const refuse = (lang: Lang, problem: TokenProblem | "unavailable") =>
      page(
        lang,
        `<h1>${escapeHtml(TEXT[lang]["title"] ?? "")}</h1><p role="alert">${escapeHtml(TEXT[lang][problem] ?? "")}</p>`,
      );

    scope.get<{ Params: { token: string } }>(ONE_CLICK_PATH, async (request, reply) => {
      const lang = langOf(request);
      void reply.type("text/html; charset=utf-8");
      if (!deps.links.ok) return reply.code(503).send(refuse(lang, "unavailable"));
      const claims = await checkLink(deps.store, deps.links.value, request.params.token, deps.now());
      if (!claims.ok) return reply.code(STATUS[claims.error]).send(refuse(lang, claims.error));
      const t = TEXT[lang];
      return reply.send(
        page(
          lang,
          `<h1>${escapeHtml(t["title"] ?? "")}</h1><p>${escapeHtml(t["confirm"] ?? "")}</p>
<form method="post"><input type="hidden" name="List-Unsubscribe" value="One-Click"><button type="submit">${escapeHtml(t["button"] ?? "")}</button></form>`,
        ),
      );
    });

    scope.post<{ Params: { token: string } }>(ONE_CLICK_PATH, async (request, reply) => {
      const lang = langOf(request);
      void reply.type("text/html; charset=utf-8");
      if (!deps.links.ok) return reply.code(503).send(refuse(lang, "unavailable"));
      const now = deps.now();
      const claims = await checkLink(deps.store, deps.links.value, request.params.token, now);
      if (!claims.ok) return reply.code(STATUS[claims.error]).send(refuse(lang, claims.error));
      if (!(await isOneClick(request)))
        return reply
          .code(400)
          .send(
            page(
              lang,
              `<h1>${escapeHtml(TEXT[lang]["title"] ?? "")}</h1><p role="alert">${escapeHtml(TEXT[lang]["bad_body"] ?? "")}</p>`,
            ),
          );
      const agent = request.headers["user-agent"];
      const result: OneClickResult = await recordOneClick(
        deps.store,
        claims.value,
        {
          ip: request.ip,
          ...(agent !== undefined ? { user_agent: agent } : {}),
          token: request.params.token,
        },
        now,
      );
      if (result.recorded === "appended") deps.onConsentRecorded(claims.value.contact_id);
      const t = TEXT[lang];
      return reply.send(
        page(
          lang,
          `<h1>${escapeHtml(t["title"] ?? "")}</h1><p role="status">${escapeHtml((result.recorded === "appended" ? t["done"] : t["already"]) ?? "")}</p><p>${escapeHtml(t["done_more"] ?? "")}</p>`,
        ),
      );
    });
    done();
  });
}
