/**
 * The pages a person reaches from an email: the one-click unsubscribe URL (RFC 8058). `GET` shows a
 * confirmation page (mail scanners fetch links, so a GET never unsubscribes); `POST` with the body
 * `List-Unsubscribe=One-Click` (form-encoded or multipart) unsubscribes from all email, recorded in
 * the ledger before the answer, without a cookie, a session or a redirect, and idempotently. A
 * forged, expired or revoked link gets a 4xx page that says so. Pages are plain HTML (no script),
 * in English or French by the browser's Accept-Language.
 */
import Busboy from "busboy";
import type { FastifyError, FastifyInstance, FastifyRequest } from "fastify";
import type { Result } from "../core/result";
import {
  checkLink,
  preferencesOf,
  recordOneClick,
  recordPreferences,
  preferencePageAct,
  type PreferenceLine,
  type LinkSigner,
  type OneClickResult,
  type TokenProblem,
} from "../runs/personal-links";
import type { StoreSession } from "../store/ports";
import type { ConcordConfig } from "../config/concord-config";
import { escapeHtml } from "./escape-html";
import { mediaType } from "./media-type";
import { registerSignupRoutes, type SignupPagesDeps } from "./signup-pages";

export type PersonPagesDeps = {
  store: StoreSession;
  /** The topics the preference centre offers (the config's). */
  config: Pick<ConcordConfig, "topics">;
  /** The link signer, or why personal links are not available (every link page then says so). */
  links: Result<LinkSigner, string>;
  now: () => Date;
  /** Called once a person's consent changed here, to carry it to every system now. */
  onConsentRecorded: (contactId: string) => void;
  /** The sign-up form and its confirmation, when the config has a `signup` section. */
  signup?: SignupPagesDeps;
};

/** The one-click path: `/l/u/<token>`. */
export const ONE_CLICK_PATH = "/l/u/:token";
/** The preference centre: `/l/p/<token>`. */
export const PREFERENCES_PATH = "/l/p/:token";
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
    busy: "This page cannot be used just now. Please try again in a minute; nothing was changed.",
    bad_body: "This request is not a one-click unsubscribe (expected List-Unsubscribe=One-Click).",
    bad_form: "This form could not be read: send it from the preference page (a form-encoded body).",
    too_large:
      "This request is larger than a one-click unsubscribe or the preference page sends (16 KiB at most).",
    prefs_title: "Your email preferences",
    prefs_intro:
      "Choose what you receive from this organisation. Your choice applies to every system it uses to email you.",
    prefs_all: "Email from this organisation",
    prefs_all_hint: "Untick to receive no email at all.",
    prefs_topics: "Topics",
    prefs_left: "You left this on",
    prefs_stopped: "Stopped by the organisation on",
    prefs_save: "Save my choices",
    prefs_saved: "Your choices are saved.",
    prefs_nothing: "Nothing changed.",
    prefs_stale:
      "Your preferences changed since this page was opened (by an unsubscribe link, or by the organisation), so nothing was saved. Here they are now: make your choices again.",
    prefs_receiving: "receiving",
    prefs_not_receiving: "not receiving",
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
    busy: "Cette page ne peut pas être utilisée pour le moment. Réessayez dans une minute ; rien n'a été changé.",
    bad_body: "Cette requête n'est pas un désabonnement en un clic (List-Unsubscribe=One-Click attendu).",
    bad_form:
      "Ce formulaire n'a pas pu être lu : envoyez-le depuis la page de préférences (un corps encodé en formulaire).",
    too_large:
      "Cette requête dépasse ce qu'envoient un désabonnement en un clic ou la page de préférences (16 Kio au plus).",
    prefs_title: "Vos préférences de courriel",
    prefs_intro:
      "Choisissez ce que vous recevez de cet organisme. Votre choix s'applique à chaque système qu'il utilise pour vous écrire.",
    prefs_all: "Courriels de cet organisme",
    prefs_all_hint: "Décochez pour ne plus recevoir aucun courriel.",
    prefs_topics: "Sujets",
    prefs_left: "Vous l'avez quitté le",
    prefs_stopped: "Arrêté par l'organisme le",
    prefs_save: "Enregistrer mes choix",
    prefs_saved: "Vos choix sont enregistrés.",
    prefs_nothing: "Rien n'a changé.",
    prefs_stale:
      "Vos préférences ont changé depuis l'ouverture de cette page (par un lien de désabonnement, ou par l'organisme) : rien n'a été enregistré. Les voici maintenant : refaites vos choix.",
    prefs_receiving: "reçu",
    prefs_not_receiving: "non reçu",
  },
};

function langOf(request: FastifyRequest): Lang {
  const value = request.headers["accept-language"] ?? "";
  const first = (value.split(",")[0] ?? "").trim().toLowerCase();
  return first.startsWith("fr") ? "fr" : "en";
}

function page(lang: Lang, body: string, titleKey = "title"): string {
  return shell(lang, body, escapeHtml(TEXT[lang][titleKey] ?? ""));
}

/** Every person-facing page's frame: `title` is HTML-escaped already. */
function shell(lang: Lang, body: string, title: string): string {
  return `<!doctype html>
<html lang="${lang}"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex"><title>${title}</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:34rem;margin:3rem auto;padding:0 1rem;color:#1b2430}
button{font:inherit;padding:.5rem 1.2rem;border-radius:6px;border:1px solid #1d4ed8;background:#1d4ed8;color:#fff;cursor:pointer}
button:focus,input:focus{outline:3px solid #93c5fd;outline-offset:2px}
input[type=email],input[type=text]{font:inherit;width:100%;box-sizing:border-box;padding:.4rem;border:1px solid #94a3b8;border-radius:6px}
fieldset{border:1px solid #cbd5e1;border-radius:6px;margin:1rem 0;padding:.5rem 1rem}.choice{margin:.4rem 0}
.trap{position:absolute;left:-10000px;width:1px;height:1px;overflow:hidden}
input[type=checkbox]{width:1.1rem;height:1.1rem;vertical-align:middle}.state,.hint{color:#52606d;font-size:.9rem}</style></head>
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
/**
 * Whether the body is a one-click unsubscribe, and how it came: a mail client's RFC 8058 POST
 * (`header`), or the person pressing the button of the page the link opens (`page`, which says so).
 */
async function oneClickOf(request: FastifyRequest): Promise<"header" | "page" | false> {
  const type = request.headers["content-type"] ?? "";
  const media = mediaType(type);
  const raw = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
  // The value as RFC 8058 gives it; a line end a sender leaves after it changes nothing.
  if (media === "application/x-www-form-urlencoded") {
    const form = new URLSearchParams(raw.toString("utf8"));
    if (form.get("List-Unsubscribe")?.trim() !== "One-Click") return false;
    return form.get("via") === "page" ? "page" : "header";
  }
  if (media !== "multipart/form-data") return false;
  return (await isMultipartOneClick(type, raw)) ? "header" : false;
}

/** RFC 8058 lets a mail client send the one-click body as multipart/form-data too. */
function isMultipartOneClick(type: string, raw: Buffer): Promise<boolean> {
  return new Promise((resolve) => {
    let found = false;
    try {
      const parser = Busboy({
        headers: { "content-type": type },
        limits: { fields: 20, files: 0, fieldSize: 1024 },
      });
      parser.on("field", (name, value) => {
        if (name === "List-Unsubscribe" && value.trim() === "One-Click") found = true;
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

/** The hidden field of each line that says how the page showed it (`1` receiving, `0` not). */
const SHOWN_PREFIX = "shown:";

/** The preference form: one checkbox per line, labelled, with its state in words (no script). */
function preferencesPage(lang: Lang, lines: readonly PreferenceLine[], note?: string): string {
  const t = TEXT[lang];
  const e = (k: string) => escapeHtml(t[k] ?? "");
  const box = (l: PreferenceLine, label: string, hint?: string) => {
    const id = l.key.replace(/[^a-z0-9]/gi, "-");
    const state = l.receiving
      ? e("prefs_receiving")
      : `${e("prefs_not_receiving")}${l.since !== undefined ? ` — ${e(l.left_by_person ? "prefs_left" : "prefs_stopped")} ${escapeHtml(l.since.slice(0, 10))}` : ""}`;
    // What the page shows goes back with the choice: a choice is made on the state it was shown.
    return `<div class="choice"><input type="hidden" name="${escapeHtml(SHOWN_PREFIX + l.key)}" value="${l.receiving ? "1" : "0"}"><input type="checkbox" id="${id}" name="${escapeHtml(l.key)}"${l.receiving ? " checked" : ""}>
<label for="${id}">${escapeHtml(label)}</label> <span class="state" id="${id}-state">(${state})</span>${hint !== undefined ? `<div class="hint">${escapeHtml(hint)}</div>` : ""}</div>`;
  };
  const [all, ...topics] = lines;
  return page(
    lang,
    `<h1>${e("prefs_title")}</h1>${note !== undefined ? `<p role="status">${escapeHtml(note)}</p>` : ""}<p>${e("prefs_intro")}</p>
<form method="post"><fieldset><legend>${e("prefs_all")}</legend>${all ? box(all, t["prefs_all"] ?? "", t["prefs_all_hint"]) : ""}</fieldset>
${topics.length > 0 ? `<fieldset><legend>${e("prefs_topics")}</legend>${topics.map((l) => box(l, l.label)).join("\n")}</fieldset>` : ""}
<button type="submit">${e("prefs_save")}</button></form>`,
    "prefs_title",
  );
}

/** What the person saw when they chose: kept with their choice as evidence. */
function wording(lang: Lang, lines: readonly PreferenceLine[]): string {
  const t = TEXT[lang];
  return [
    t["prefs_title"],
    t["prefs_intro"],
    t["prefs_all"],
    ...lines.slice(1).map((l) => l.label),
    t["prefs_save"],
  ].join(" | ");
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
    // These pages' own policy, over the server's (a route may set its own: the embeddable form).
    scope.addHook("onRequest", async (_request, reply) => {
      void reply
        .header("cache-control", "no-store")
        .header("referrer-policy", "no-referrer")
        .header("x-robots-tag", "noindex")
        .header(
          "content-security-policy",
          "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
        );
    });
    // The server's own failures (a store too busy to write, an error) are answered, as everything
    // here, in the page's form: a person in a browser never gets the API's JSON. The sign-up form's
    // JSON API keeps JSON, in its own shape. The server has logged the failure already.
    scope.addHook("onSend", async (request, reply, payload) => {
      if (reply.statusCode < 500 || typeof payload !== "string") return payload;
      if (!String(reply.getHeader("content-type") ?? "").startsWith("application/json")) return payload;
      let error: unknown;
      try {
        error = JSON.parse(payload);
      } catch {
        return payload;
      }
      if (typeof error !== "object" || error === null || "error" in error) return payload;
      if (mediaType(request.headers["content-type"]) === "application/json") return JSON.stringify({ error });
      void reply.type("text/html; charset=utf-8");
      return refuse(langOf(request), "busy");
    });
    if (deps.signup !== undefined) registerSignupRoutes(scope, deps.signup, shell, langOf);

    /** A page that says what is wrong (a message of TEXT). */
    const refuse = (
      lang: Lang,
      problem: TokenProblem | "unavailable" | "busy" | "bad_body" | "bad_form" | "too_large",
    ) =>
      page(
        lang,
        `<h1>${escapeHtml(TEXT[lang]["title"] ?? "")}</h1><p role="alert">${escapeHtml(TEXT[lang][problem] ?? "")}</p>`,
      );

    // A body refused before the route reads it (too large, or not a form) gets the pages' own
    // answer, in the person's language, saying what these pages take.
    scope.setErrorHandler((error: FastifyError, request, reply) => {
      if (error.statusCode !== 413 && error.statusCode !== 415) throw error;
      const problem =
        error.statusCode === 413 ? "too_large" : request.url.startsWith("/l/u/") ? "bad_body" : "bad_form";
      return reply
        .code(error.statusCode)
        .type("text/html; charset=utf-8")
        .send(refuse(langOf(request), problem));
    });

    scope.get<{ Params: { token: string } }>(PREFERENCES_PATH, async (request, reply) => {
      const lang = langOf(request);
      void reply.type("text/html; charset=utf-8");
      if (!deps.links.ok) return reply.code(503).send(refuse(lang, "unavailable"));
      const now = deps.now();
      const claims = await checkLink(deps.store, deps.links.value, request.params.token, now, "preferences");
      if (!claims.ok) return reply.code(STATUS[claims.error]).send(refuse(lang, claims.error));
      return reply.send(
        preferencesPage(lang, await preferencesOf(deps.store, deps.config, claims.value.contact_id, now)),
      );
    });

    scope.post<{ Params: { token: string } }>(PREFERENCES_PATH, async (request, reply) => {
      const lang = langOf(request);
      void reply.type("text/html; charset=utf-8");
      if (!deps.links.ok) return reply.code(503).send(refuse(lang, "unavailable"));
      const now = deps.now();
      const claims = await checkLink(deps.store, deps.links.value, request.params.token, now, "preferences");
      if (!claims.ok) return reply.code(STATUS[claims.error]).send(refuse(lang, claims.error));
      const raw = Buffer.isBuffer(request.body) ? request.body.toString("utf8") : "";
      if (mediaType(request.headers["content-type"]) !== "application/x-www-form-urlencoded")
        return reply.code(415).send(refuse(lang, "bad_form"));
      const form = new URLSearchParams(raw);
      const choices = new Set(
        [...form.keys()].filter((k) => !k.startsWith(SHOWN_PREFIX) && form.get(k) === "on"),
      );
      const shown = new Map<string, boolean>();
      for (const [k, v] of form)
        if (k.startsWith(SHOWN_PREFIX) && (v === "1" || v === "0"))
          shown.set(k.slice(SHOWN_PREFIX.length), v === "1");
      const before = await preferencesOf(deps.store, deps.config, claims.value.contact_id, now);
      const agent = request.headers["user-agent"];
      const recorded = await recordPreferences(
        deps.store,
        deps.config,
        claims.value.contact_id,
        { choices, shown },
        preferencePageAct({
          ip: request.ip,
          ...(agent !== undefined ? { user_agent: agent } : {}),
          wording: wording(lang, before),
        }),
        now,
      );
      // Erased since the link was checked: as if it had been before.
      if (recorded.erased) return reply.code(STATUS.unknown_person).send(refuse(lang, "unknown_person"));
      // A form of a state that has moved on records nothing (unless it was this very form, sent
      // again): the page shows the state now.
      const after = await preferencesOf(deps.store, deps.config, claims.value.contact_id, now);
      if (recorded.stale)
        return reply.code(409).send(preferencesPage(lang, after, TEXT[lang]["prefs_stale"]));
      const changed = recorded.opt_ins.length + recorded.opt_outs.length > 0;
      if (changed) deps.onConsentRecorded(claims.value.contact_id);
      return reply.send(
        preferencesPage(
          lang,
          after,
          TEXT[lang][changed || recorded.already ? "prefs_saved" : "prefs_nothing"],
        ),
      );
    });

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
<form method="post"><input type="hidden" name="List-Unsubscribe" value="One-Click"><input type="hidden" name="via" value="page"><button type="submit">${escapeHtml(t["button"] ?? "")}</button></form>`,
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
      const via = await oneClickOf(request);
      if (via === false) return reply.code(400).send(refuse(lang, "bad_body"));
      const agent = request.headers["user-agent"];
      const shown = TEXT[lang];
      const result: OneClickResult = await recordOneClick(
        deps.store,
        claims.value,
        {
          ip: request.ip,
          ...(agent !== undefined ? { user_agent: agent } : {}),
          token: request.params.token,
          // The person pressed the page's button: the words it showed them are the evidence.
          ...(via === "page" ? { page_wording: `${shown["confirm"] ?? ""} [${shown["button"] ?? ""}]` } : {}),
        },
        now,
        deps.config,
      );
      if (result.recorded === "erased")
        return reply.code(STATUS.unknown_person).send(refuse(lang, "unknown_person"));
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
