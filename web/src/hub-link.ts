// The hub this gateway is registered with (from /api/v1/cloud), for "investigate on the hub" pivots.
let hubUi: string | null = null;

export function setHubUrl(url: string | null): void {
  hubUi = url ? `${url.replace(/\/+$/, '')}/ui/` : null;
}

/** The hub's cross-gateway search for an observable, or null when the gateway is not registered. */
export function hubSearchUrl(type: string, value: string): string | null {
  return hubUi ? `${hubUi}#/search?${new URLSearchParams({ type, value })}` : null;
}
