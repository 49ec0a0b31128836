// An observable (address, IP, hash, URL, domain) with a pivot menu: search tracking for it, search every
// gateway on the hub (when this gateway is registered), or copy it.
// Values are shown as text, never as links to themselves: a URL from a message is not clickable here.
import { useState } from 'react';
import { hubSearchUrl } from './hub-link.ts';

const FIELD: Record<string, string> = {
  email: 'sender',
  ip: 'ip',
  sha256: 'sha256',
  url: 'url',
  domain: 'senderDomain',
};

export function Observable({ type, value }: { type: keyof typeof FIELD; value: string }) {
  const [open, setOpen] = useState(false);
  if (!value) return <>–</>;
  return (
    <span className="observable">
      <span className="value">{value}</span>
      <button type="button" aria-label={`pivot on ${value}`} aria-expanded={open} onClick={() => setOpen(!open)}>
        ▾
      </button>
      {open && (
        <span className="menu" role="menu">
          <a
            role="menuitem"
            href={`#/tracking?${FIELD[type]}=${encodeURIComponent(value)}`}
            onClick={() => setOpen(false)}
          >
            Search tracking
          </a>
          {type === 'email' && (
            <a
              role="menuitem"
              href={`#/tracking?recipient=${encodeURIComponent(value)}`}
              onClick={() => setOpen(false)}
            >
              Search as recipient
            </a>
          )}
          {hubSearchUrl(type, value) && (
            <a
              role="menuitem"
              href={hubSearchUrl(type, value)!}
              target="_blank"
              rel="noopener noreferrer"
              onClick={() => setOpen(false)}
            >
              Investigate on the hub
            </a>
          )}
          <button
            type="button"
            role="menuitem"
            onClick={() => {
              void navigator.clipboard?.writeText(value);
              setOpen(false);
            }}
          >
            Copy
          </button>
        </span>
      )}
    </span>
  );
}
