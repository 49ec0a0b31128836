// What each role sees in the navigation, on a gateway and on the hub; the API enforces the same rules on
// every request (src/users/roles.ts, src/api/permissions.ts, src/hub/permissions.ts), so hiding a page is
// a courtesy, not a control.
import type { Session } from './api.ts';

export type Page =
  | 'dashboard'
  | 'tracking'
  | 'quarantines'
  | 'outbreak'
  | 'reports'
  | 'alerts'
  | 'cloud'
  | 'settings'
  | 'users'
  | 'audit'
  // the hub's
  | 'investigate'
  | 'casebooks'
  | 'watchlist'
  | 'hubreports'
  | 'devices'
  | 'search'
  | 'actions'
  | 'blocklist'
  | 'rules'
  | 'tokens';

const GATEWAY_PAGES: Record<Session['role'], Page[]> = {
  admin: [
    'dashboard',
    'tracking',
    'quarantines',
    'outbreak',
    'reports',
    'alerts',
    'cloud',
    'settings',
    'users',
    'audit',
  ],
  operator: ['dashboard', 'tracking', 'quarantines', 'outbreak', 'reports', 'alerts', 'cloud'],
  analyst: ['dashboard', 'tracking', 'quarantines', 'outbreak', 'reports', 'alerts', 'cloud'],
  helpdesk: ['quarantines'],
};

const HUB_PAGES: Record<Session['role'], Page[]> = {
  admin: [
    'investigate',
    'casebooks',
    'watchlist',
    'devices',
    'search',
    'hubreports',
    'rules',
    'blocklist',
    'actions',
    'tokens',
    'users',
    'audit',
  ],
  operator: [
    'investigate',
    'casebooks',
    'watchlist',
    'devices',
    'search',
    'hubreports',
    'rules',
    'blocklist',
    'actions',
  ],
  analyst: [
    'investigate',
    'casebooks',
    'watchlist',
    'devices',
    'search',
    'hubreports',
    'rules',
    'blocklist',
    'actions',
  ],
  helpdesk: [],
};

export const TITLES: Record<Page, string> = {
  dashboard: 'Dashboard',
  tracking: 'Message tracking',
  quarantines: 'Quarantines',
  outbreak: 'Outbreak Filters',
  reports: 'Reports',
  alerts: 'Alerts',
  cloud: 'Cloud services',
  settings: 'Settings',
  users: 'Users',
  audit: 'Audit log',
  investigate: 'Investigate',
  casebooks: 'Casebooks',
  watchlist: 'Watchlist and tickets',
  hubreports: 'Reports',
  devices: 'Gateways',
  search: 'Search every gateway',
  actions: 'Response actions',
  blocklist: 'Block list',
  rules: 'Outbreak rules',
  tokens: 'Registration tokens',
};

export function pagesFor(role: Session['role'], product: Session['product'] = 'gateway'): Page[] {
  return (product === 'hub' ? HUB_PAGES : GATEWAY_PAGES)[role];
}

/** May this role release and delete held messages? */
export function canActOnQuarantine(role: Session['role']): boolean {
  return role !== 'analyst';
}
