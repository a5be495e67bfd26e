/** A real SMTP server for tests: the demo's outbox, with AUTH required. */
import { startOutbox, type Mail, type Outbox } from "../../src/demo/outbox";

export const SMTP_USER = "concord-alerts";
export const SMTP_PASSWORD = "smtp-Pa55word-xyz";

export type { Mail };
export type SmtpReceiver = Outbox;

export const startSmtp = (options: { starttls?: boolean } = {}): Promise<SmtpReceiver> =>
  startOutbox({ ...options, auth: { username: SMTP_USER, password: SMTP_PASSWORD } });
