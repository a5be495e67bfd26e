/** Sign in with the admin password (server.admin_password, by default CONCORD_ADMIN_PASSWORD). */
import { useState, type SubmitEvent, type ReactNode } from "react";
import { apiPost } from "../api";
import type { Session } from "../api-types";
import { ErrorNote } from "../components/common";
import { useAction } from "../use-resource";

export function SignInPage({
  notice,
  onSignedIn,
}: {
  notice: string | undefined;
  onSignedIn: (session: Session) => void;
}): ReactNode {
  const [password, setPassword] = useState("");
  const action = useAction<Session>();
  const submit = (event: SubmitEvent<HTMLFormElement>): void => {
    event.preventDefault();
    void action
      .run(() => apiPost<Session>("/api/session", { password }))
      .then((session) => {
        if (session?.signed_in === true) onSignedIn(session);
      });
  };
  return (
    <main className="sign-in">
      <form className="sign-in-card" onSubmit={submit} aria-labelledby="sign-in-title">
        <h1 id="sign-in-title">
          <span className="brand-mark" aria-hidden="true">
            ◆
          </span>{" "}
          Concord
        </h1>
        <p className="muted">
          Keeps your CRM and email platforms in agreement about contacts, lists and consent.
        </p>
        {notice !== undefined ? (
          <div className="alert alert-info" role="status">
            {notice}
          </div>
        ) : null}
        <label htmlFor="password">Admin password</label>
        <input
          id="password"
          name="password"
          type="password"
          autoComplete="current-password"
          required
          autoFocus
          value={password}
          onChange={(e) => {
            setPassword(e.target.value);
          }}
        />
        <ErrorNote error={action.error} />
        <button type="submit" className="primary" disabled={action.pending || password === ""}>
          {action.pending ? "Signing in…" : "Sign in"}
        </button>
        <p className="hint muted">
          The password is the server's <code>server.admin_password</code> (by default the environment variable{" "}
          <code>CONCORD_ADMIN_PASSWORD</code>); the demo prints the one it chose.
        </p>
      </form>
    </main>
  );
}
