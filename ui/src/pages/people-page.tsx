/** People: search contacts by name or email address. */
import { useState, type SubmitEvent, type ReactNode } from "react";
import { query } from "../api";
import type { PersonHit } from "../api-types";
import { Badge, Empty, ErrorNote, Loading, Section } from "../components/common";
import { Link, navigate, hrefOf } from "../router";
import { useResource } from "../use-resource";

export function PeoplePage({ q }: { q: string }): ReactNode {
  return (
    <>
      <div className="page-head">
        <h1>People</h1>
      </div>
      {/* Keyed by the query, so going back in history shows that search in the box. */}
      <SearchForm key={q} q={q} />
      {q.trim() === "" ? (
        <Empty>Search by name or email address to see a person's consent across every system.</Empty>
      ) : (
        <Results q={q.trim()} />
      )}
    </>
  );
}

function SearchForm({ q }: { q: string }): ReactNode {
  const [text, setText] = useState(q);
  const submit = (event: SubmitEvent<HTMLFormElement>): void => {
    event.preventDefault();
    navigate(hrefOf({ page: "people", q: text.trim() }));
  };
  return (
    <form className="search" role="search" onSubmit={submit}>
      <label htmlFor="people-q" className="sr-only">
        Name or email address
      </label>
      <input
        id="people-q"
        type="search"
        placeholder="Name or email address"
        value={text}
        autoFocus
        onChange={(e) => {
          setText(e.target.value);
        }}
      />
      <button type="submit" className="primary">
        Search
      </button>
    </form>
  );
}

function Results({ q }: { q: string }): ReactNode {
  const people = useResource<{ people: PersonHit[] }>(`/api/people${query({ q, limit: 100 })}`);
  if (people.data === undefined)
    return people.error ? <ErrorNote error={people.error} /> : <Loading what="people" />;
  const hits = people.data.people;
  return (
    <Section title={`${hits.length === 100 ? "The first 100" : hits.length} matching “${q}”`} id="results">
      {hits.length === 0 ? (
        <Empty>Nobody matches.</Empty>
      ) : (
        <table className="data">
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Email</th>
              <th scope="col">Type</th>
            </tr>
          </thead>
          <tbody>
            {hits.map((p) => (
              <tr key={p.contact_id}>
                <td>
                  <Link to={{ page: "person", id: p.contact_id }}>{p.name ?? p.email ?? p.contact_id}</Link>
                </td>
                <td>{p.email ?? <span className="muted">no address</span>}</td>
                <td>{p.type === "organization" ? <Badge tone="neutral">organisation</Badge> : "person"}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </Section>
  );
}
