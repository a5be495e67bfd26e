/**
 * The sign-up form and its confirmation page (double opt-in), served beside the personal-link
 * pages: `GET /l/signup` shows the form (embeddable in the sites `signup.embed_origins` names),
 * `POST /l/signup` takes it (form-encoded from the page, or JSON: the form's API) and emails the
 * confirmation link; `GET /l/c/<token>` asks (mail scanners fetch links, so a GET never confirms)
 * and `POST /l/c/<token>` confirms. Plain HTML, no script, English or French.
 */
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { z } from "zod";
import type { ConcordConfig } from "../config/concord-config";
import {
  checkConfirmation,
  confirmSignup,
  offeredTopics,
  requestSignup,
  shownDigest,
  type SignupDeps,
  type SignupLang,
  type SignupProblem,
  type SignupRequest,
  type SignupShown,
} from "../runs/signup";
import { escapeHtml } from "./escape-html";
import { mediaType } from "./media-type";

export type SignupPagesDeps = SignupDeps & {
  /** Called once a person confirmed, to place them in the sign-up platform and sync them now. */
  onConfirmed: (contactId: string) => void;
};

export const SIGNUP_PATH = "/l/signup";
export const CONFIRM_PATH = "/l/c/:token";

type Texts = Record<string, string>;
const TEXT: Record<SignupLang, Texts> = {
  en: {
    title: "Sign up",
    heading: "Sign up for email from {org}",
    email: "Email address",
    first_name: "First name (optional)",
    last_name: "Last name (optional)",
    topics: "What would you like to receive?",
    statement:
      "By signing up you ask to receive email from {org}. We first send you an email to confirm. Every email has a link to unsubscribe at any time.",
    button: "Sign up",
    sent: "Check your inbox: we sent a link to {email} to confirm your subscription. The link works until {until} UTC.",
    sent_more: "Nothing is signed up until you confirm. If no email arrives, look in your spam folder.",
    too_many: "Too many sign-ups came from this network in the last hour. Please try again later.",
    unavailable: "The confirmation email could not be sent just now. Please try again in a few minutes.",
    off: "Signing up is not available here.",
    bad_form: "This form could not be read: send it from the sign-up page.",
    too_large:
      "This request is larger than the sign-up form sends (16 KiB at most): send it from the sign-up page.",
    confirm_title: "Confirm your subscription",
    confirm_ask: "Confirm that you want to receive email from {org}?",
    confirm_button: "Confirm",
    confirm_bad: "This confirmation could not be read: use the Confirm button on the page the link opens.",
    confirm_changed:
      "This sign-up changed after the page was opened (another sign-up was sent for this address). Nothing is confirmed yet: read what it asks now, and confirm only if it is what you want.",
    confirm_who: "For {email}, under the name: {name}.",
    confirm_who_unnamed: "For {email}, with no name.",
    confirm_yes: "You will receive: {topics}.",
    confirm_no: "You will not receive: {topics}.",
    confirmed: "Thank you: your subscription to email from {org} is confirmed.",
    confirmed_more: "You can leave at any time with the link at the end of every email.",
    already: "Your subscription is already confirmed.",
    unknown: "This confirmation link is not valid. Copy the whole link from the email.",
    expired: "This confirmation link has expired. Sign up again to get a new one.",
  },
  fr: {
    title: "Inscription",
    heading: "Recevoir les courriels de {org}",
    email: "Adresse courriel",
    first_name: "Prénom (facultatif)",
    last_name: "Nom (facultatif)",
    topics: "Que souhaitez-vous recevoir ?",
    statement:
      "En vous inscrivant, vous demandez à recevoir les courriels de {org}. Nous vous envoyons d'abord un courriel de confirmation. Chaque courriel contient un lien pour vous désabonner à tout moment.",
    button: "M'inscrire",
    sent: "Consultez votre boîte de réception : nous avons envoyé à {email} un lien pour confirmer votre abonnement. Le lien fonctionne jusqu'au {until} UTC.",
    sent_more:
      "Aucune inscription n'est faite avant votre confirmation. Si aucun courriel n'arrive, regardez dans vos indésirables.",
    too_many: "Trop d'inscriptions sont venues de ce réseau dans la dernière heure. Réessayez plus tard.",
    unavailable: "Le courriel de confirmation n'a pas pu être envoyé. Réessayez dans quelques minutes.",
    off: "L'inscription n'est pas disponible ici.",
    bad_form: "Ce formulaire n'a pas pu être lu : envoyez-le depuis la page d'inscription.",
    too_large:
      "Cette requête dépasse ce que le formulaire d'inscription envoie (16 Kio au plus) : envoyez-la depuis la page d'inscription.",
    confirm_title: "Confirmez votre abonnement",
    confirm_ask: "Confirmez-vous vouloir recevoir les courriels de {org} ?",
    confirm_button: "Confirmer",
    confirm_bad:
      "Cette confirmation n'a pas pu être lue : utilisez le bouton Confirmer de la page qu'ouvre le lien.",
    confirm_changed:
      "Cette inscription a changé après l'ouverture de la page (une autre inscription a été envoyée pour cette adresse). Rien n'est encore confirmé : lisez ce qu'elle demande maintenant, et ne confirmez que si c'est ce que vous voulez.",
    confirm_who: "Pour {email}, au nom de : {name}.",
    confirm_who_unnamed: "Pour {email}, sans nom.",
    confirm_yes: "Vous recevrez : {topics}.",
    confirm_no: "Vous ne recevrez pas : {topics}.",
    confirmed: "Merci : votre abonnement aux courriels de {org} est confirmé.",
    confirmed_more: "Vous pouvez partir à tout moment avec le lien au bas de chaque courriel.",
    already: "Votre abonnement est déjà confirmé.",
    unknown: "Ce lien de confirmation n'est pas valide. Copiez le lien entier du courriel.",
    expired: "Ce lien de confirmation a expiré. Inscrivez-vous de nouveau pour en recevoir un autre.",
  },
};

const say = (lang: SignupLang, key: string, vars: Record<string, string> = {}): string =>
  escapeHtml((TEXT[lang][key] ?? "").replace(/\{(\w+)\}/g, (_m, name: string) => vars[name] ?? `{${name}}`));

export type PageShell = (lang: SignupLang, body: string, title: string) => string;

type FormValues = { email: string; first_name: string; last_name: string; topics: ReadonlySet<string> };

function formHtml(
  lang: SignupLang,
  config: Pick<ConcordConfig, "signup" | "topics">,
  values: FormValues,
  problem?: string,
): string {
  const org = { org: config.signup?.organisation ?? "" };
  const topics = offeredTopics(config);
  const input = (name: "email" | "first_name" | "last_name", type: string, extra: string) =>
    `<div class="choice"><label for="${name}">${say(lang, name)}</label><br><input id="${name}" name="${name}" type="${type}" value="${escapeHtml(values[name])}" maxlength="${name === "email" ? 254 : 100}"${extra}></div>`;
  return `<h1>${say(lang, "heading", org)}</h1>${problem !== undefined ? `<p role="alert">${escapeHtml(problem)}</p>` : ""}
<form method="post" action="${SIGNUP_PATH}?lang=${lang}">
${input("email", "email", ' required autocomplete="email"')}
${input("first_name", "text", ' autocomplete="given-name"')}
${input("last_name", "text", ' autocomplete="family-name"')}
${
  topics.length > 0
    ? `<fieldset><legend>${say(lang, "topics")}</legend>${topics
        .map(
          (t) =>
            `<div class="choice"><input type="checkbox" id="topic-${escapeHtml(t.key)}" name="topic" value="${escapeHtml(t.key)}"${values.topics.has(t.key) ? " checked" : ""}> <label for="topic-${escapeHtml(t.key)}">${escapeHtml(t.label)}</label></div>`,
        )
        .join("\n")}</fieldset>`
    : ""
}
<div class="trap" aria-hidden="true"><label for="website">Website</label><input id="website" name="website" type="text" tabindex="-1" autocomplete="off"></div>
<p class="hint">${say(lang, "statement", org)}</p>
<button type="submit">${say(lang, "button")}</button></form>`;
}

/** The words a person saw on the form, kept with their confirmed opt-in. */
function formWording(lang: SignupLang, config: Pick<ConcordConfig, "signup" | "topics">): string {
  const org = { org: config.signup?.organisation ?? "" };
  const plain = (key: string) =>
    (TEXT[lang][key] ?? "").replace(/\{(\w+)\}/g, (_m, name: string) => org[name as "org"] ?? "");
  return [
    plain("heading"),
    plain("topics"),
    ...offeredTopics(config).map((t) => t.label),
    plain("statement"),
    plain("button"),
  ].join(" | ");
}

/**
 * What the confirmation page asks, in plain text: the sign-up's topics ticked and not, one sentence
 * each. The page shows these lines; the confirmed opt-in keeps them as what the person confirmed.
 */
function confirmationLines(
  lang: SignupLang,
  config: Pick<ConcordConfig, "signup" | "topics">,
  request: SignupShown,
): string[] {
  const fill = (key: string, vars: Record<string, string>) =>
    (TEXT[lang][key] ?? "").replace(/\{(\w+)\}/g, (_m, name: string) => vars[name] ?? "");
  const offered = offeredTopics(config);
  const ticked = request.topics;
  const yes = offered.filter((t) => ticked.includes(t.key)).map((t) => t.label);
  const no = offered.filter((t) => !ticked.includes(t.key)).map((t) => t.label);
  // Whoever filled in the form typed the name: the person sees it before it is kept as theirs.
  const name = [request.first_name, request.last_name].filter((n) => n !== null && n !== "").join(" ");
  return [
    fill("confirm_ask", { org: config.signup?.organisation ?? "" }),
    fill(name === "" ? "confirm_who_unnamed" : "confirm_who", { email: request.email, name }),
    ...(yes.length > 0 ? [fill("confirm_yes", { topics: yes.join(", ") })] : []),
    ...(no.length > 0 ? [fill("confirm_no", { topics: no.join(", ") })] : []),
  ];
}

/** Before the words a caller of the sign-up API says its own form showed: evidence of its claim only. */
export const CLAIMED_WORDING =
  "As the site that sent this sign-up says its form read (not shown by Concord): ";

const JsonSignupSchema = z
  .object({
    email: z.string().max(320),
    first_name: z.string().max(1000).optional(),
    last_name: z.string().max(1000).optional(),
    topics: z.array(z.string().max(64)).max(50).default([]),
    lang: z.enum(["en", "fr"]).default("en"),
    /** What the embedding site's own form said, kept as evidence; default: this server's form. */
    form_wording: z.string().min(1).max(4000).optional(),
  })
  .strict();

const STATUS: Record<SignupProblem["code"], number> = {
  signup_off: 404,
  invalid_request: 400,
  too_many_requests: 429,
  email_unavailable: 503,
};

/** Bodies of the sign-up form and its API are small. */
const BODY_LIMIT = 16 * 1024;

export function registerSignupRoutes(
  parent: FastifyInstance,
  deps: SignupPagesDeps,
  shell: PageShell,
  langOf: (request: FastifyRequest) => SignupLang,
): void {
  void parent.register((scope, _opts, done) => {
    // The form's API takes JSON too (as bytes, read below); the other person pages do not.
    scope.addContentTypeParser(
      "application/json",
      { parseAs: "buffer", bodyLimit: BODY_LIMIT },
      (_r, body, next) => {
        next(null, body);
      },
    );
    signupRoutes(scope, deps, shell, langOf);
    done();
  });
}

function signupRoutes(
  scope: FastifyInstance,
  deps: SignupPagesDeps,
  shell: PageShell,
  langOf: (request: FastifyRequest) => SignupLang,
): void {
  const { config } = deps;
  const embed = ["'self'", ...(config.signup?.embed_origins ?? []).map((u) => new URL(u).origin)].join(" ");
  const embedPolicy = `default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors ${embed}`;
  const htmlReply = (
    reply: FastifyReply,
    status: number,
    lang: SignupLang,
    body: string,
    title = "title",
  ) => {
    void reply
      .code(status)
      .type("text/html; charset=utf-8")
      .send(shell(lang, body, say(lang, title)));
    return reply;
  };
  const langFor = (request: FastifyRequest<{ Querystring: { lang?: string } }>): SignupLang =>
    request.query.lang === "fr" ? "fr" : request.query.lang === "en" ? "en" : langOf(request);

  // A body refused before the route reads it (too large, a type these routes do not take) is
  // answered as the route answers: the JSON API's error object, or the form's page.
  scope.setErrorHandler((error: FastifyError, request, reply) => {
    if (error.statusCode !== 413 && error.statusCode !== 415) throw error;
    // (A JSON body is never of a type refused here: only its size can be.)
    if (error.statusCode === 413 && mediaType(request.headers["content-type"]) === "application/json")
      return reply.code(413).send({
        error: {
          code: "body_too_large",
          message: `The body is larger than ${BODY_LIMIT} bytes; a sign-up is a few hundred.`,
        },
      });
    const lang = langFor(request as FastifyRequest<{ Querystring: { lang?: string } }>);
    const key = error.statusCode === 413 ? "too_large" : "bad_form";
    return htmlReply(reply, error.statusCode, lang, `<p role="alert">${say(lang, key)}</p>`);
  });

  scope.get<{ Querystring: { lang?: string } }>(SIGNUP_PATH, async (request, reply) => {
    const lang = langFor(request);
    if (config.signup === undefined)
      return htmlReply(reply, 404, lang, `<p role="alert">${say(lang, "off")}</p>`);
    // The form may be shown in a frame by the organisation's own sites, and nowhere else.
    void reply.header("content-security-policy", embedPolicy);
    return htmlReply(
      reply,
      200,
      lang,
      formHtml(lang, config, { email: "", first_name: "", last_name: "", topics: new Set() }),
    );
  });

  scope.post<{ Querystring: { lang?: string } }>(SIGNUP_PATH, async (request, reply) => {
    // The answer shows in the same frame as the form did.
    void reply.header("content-security-policy", embedPolicy);
    const type = request.headers["content-type"] ?? "";
    const raw = Buffer.isBuffer(request.body) ? request.body.toString("utf8") : "";
    const agent = request.headers["user-agent"];
    const client = { ip: request.ip, ...(agent !== undefined ? { user_agent: agent } : {}) };

    if (mediaType(type) === "application/json") {
      let body: unknown;
      try {
        body = JSON.parse(raw);
      } catch {
        return reply.code(400).send({
          error: {
            code: "invalid_request",
            message: 'The body is not JSON; expected an object such as {"email": "ada@example.org"}.',
          },
        });
      }
      const parsed = JsonSignupSchema.safeParse(body);
      if (!parsed.success) {
        const issue = parsed.error.issues[0];
        const field = issue?.path.join(".") ?? "";
        return reply.code(400).send({
          error: {
            code: "invalid_request",
            field,
            message: `${field === "" ? "body" : field}: ${issue?.message ?? "invalid"}; expected {email, first_name?, last_name?, topics?: [topic keys], lang?: "en" | "fr", form_wording?}.`,
          },
        });
      }
      const j = parsed.data;
      const result = await requestSignup(deps, {
        email: j.email,
        ...(j.first_name !== undefined ? { first_name: j.first_name } : {}),
        ...(j.last_name !== undefined ? { last_name: j.last_name } : {}),
        topics: j.topics,
        lang: j.lang,
        // The caller's words are its own claim, kept as such: Concord showed the person none of them,
        // nor its own form (the confirmation page is what Concord shows them).
        wording: j.form_wording !== undefined ? `${CLAIMED_WORDING}${j.form_wording}` : "",
        ...client,
      });
      if (!result.ok) return reply.code(STATUS[result.error.code]).send({ error: result.error });
      return reply.code(202).send(result.value);
    }

    const lang = langFor(request);
    if (mediaType(type) !== "application/x-www-form-urlencoded")
      return htmlReply(reply, 415, lang, `<p role="alert">${say(lang, "bad_form")}</p>`);
    const form = new URLSearchParams(raw);
    const values: FormValues = {
      email: form.get("email") ?? "",
      first_name: form.get("first_name") ?? "",
      last_name: form.get("last_name") ?? "",
      topics: new Set(form.getAll("topic")),
    };
    const signupRequest: SignupRequest = {
      email: values.email,
      first_name: values.first_name,
      last_name: values.last_name,
      topics: [...values.topics],
      lang,
      wording: formWording(lang, config),
      trap: form.get("website") ?? "",
      ...client,
    };
    const result = await requestSignup(deps, signupRequest);
    if (!result.ok) {
      const e = result.error;
      if (e.code === "invalid_request")
        return htmlReply(reply, 400, lang, formHtml(lang, config, values, e.message));
      const key =
        e.code === "too_many_requests" ? "too_many" : e.code === "signup_off" ? "off" : "unavailable";
      // What the person typed stays in the form, to send again once the cause has passed.
      if (e.code === "too_many_requests" || e.code === "email_unavailable")
        return htmlReply(reply, STATUS[e.code], lang, formHtml(lang, config, values, say(lang, key)));
      return htmlReply(reply, STATUS[e.code], lang, `<p role="alert">${say(lang, key)}</p>`);
    }
    return htmlReply(
      reply,
      200,
      lang,
      `<h1>${say(lang, "heading", { org: config.signup?.organisation ?? "" })}</h1><p role="status">${say(
        lang,
        "sent",
        {
          email: values.email.trim(),
          until: result.value.expires_at.slice(0, 16).replace("T", " "),
        },
      )}</p><p>${say(lang, "sent_more")}</p>`,
    );
  });

  const confirmProblem = (lang: SignupLang, reply: FastifyReply, problem: "unknown" | "expired") =>
    htmlReply(
      reply,
      problem === "unknown" ? 404 : 410,
      lang,
      `<h1>${say(lang, "confirm_title")}</h1><p role="alert">${say(lang, problem)}</p>`,
      "confirm_title",
    );

  scope.get<{ Params: { token: string } }>(CONFIRM_PATH, async (request, reply) => {
    const lang = langOf(request);
    const state = await checkConfirmation(deps.store, request.params.token, deps.now());
    if (!state.ok) return confirmProblem(lang, reply, state.error);
    if (state.value.status === "confirmed") return alreadyConfirmed(lang, reply);
    return confirmationPage(lang, reply, 200, state.value);
  });

  const alreadyConfirmed = (lang: SignupLang, reply: FastifyReply) =>
    htmlReply(
      reply,
      200,
      lang,
      `<h1>${say(lang, "confirm_title")}</h1><p role="status">${say(lang, "already")}</p>`,
      "confirm_title",
    );

  /** The page that asks the person to confirm what the sign-up asks now (with `notice` above it). */
  const confirmationPage = (
    lang: SignupLang,
    reply: FastifyReply,
    status: number,
    shown: SignupShown,
    notice?: string,
  ) =>
    htmlReply(
      reply,
      status,
      lang,
      `<h1>${say(lang, "confirm_title")}</h1>${notice === undefined ? "" : `<p role="alert">${notice}</p>`}${confirmationLines(
        lang,
        config,
        shown,
      )
        .map((line) => `<p>${escapeHtml(line)}</p>`)
        .join("")}
<form method="post"><input type="hidden" name="confirm" value="yes"><input type="hidden" name="shown" value="${shownDigest(shown)}"><button type="submit">${say(lang, "confirm_button")}</button></form>`,
      "confirm_title",
    );

  scope.post<{ Params: { token: string } }>(CONFIRM_PATH, async (request, reply) => {
    const lang = langOf(request);
    // Only the page's own form confirms (`confirm=yes`): a tool that posts to every link it finds,
    // with no body or another one, confirms nothing.
    const raw = Buffer.isBuffer(request.body) ? request.body.toString("utf8") : "";
    const form = new URLSearchParams(raw);
    if (
      mediaType(request.headers["content-type"] ?? "") !== "application/x-www-form-urlencoded" ||
      form.get("confirm") !== "yes"
    )
      return htmlReply(
        reply,
        400,
        lang,
        `<h1>${say(lang, "confirm_title")}</h1><p role="alert">${say(lang, "confirm_bad")}</p>`,
        "confirm_title",
      );
    const agent = request.headers["user-agent"];
    const confirmed = await confirmSignup(deps, request.params.token, {
      ip: request.ip,
      ...(agent !== undefined ? { user_agent: agent } : {}),
      shown: (request) =>
        [...confirmationLines(lang, config, request), say(lang, "confirm_button")].join(" | "),
      shown_digest: form.get("shown") ?? undefined,
    });
    if (!confirmed.ok) {
      if (confirmed.error !== "changed") return confirmProblem(lang, reply, confirmed.error);
      // Not what the page showed: the person reads what it asks now, and confirms that or nothing.
      const now = await checkConfirmation(deps.store, request.params.token, deps.now());
      if (!now.ok) return confirmProblem(lang, reply, now.error);
      return now.value.status === "pending"
        ? confirmationPage(lang, reply, 409, now.value, say(lang, "confirm_changed"))
        : alreadyConfirmed(lang, reply);
    }
    if (confirmed.value.status === "confirmed") deps.onConfirmed(confirmed.value.contact_id);
    const org = { org: config.signup?.organisation ?? "" };
    return htmlReply(
      reply,
      200,
      lang,
      confirmed.value.status === "confirmed"
        ? `<h1>${say(lang, "confirm_title")}</h1><p role="status">${say(lang, "confirmed", org)}</p><p>${say(lang, "confirmed_more")}</p>`
        : `<h1>${say(lang, "confirm_title")}</h1><p role="status">${say(lang, "already")}</p>`,
      "confirm_title",
    );
  });
}
