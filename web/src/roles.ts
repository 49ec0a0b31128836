// What each role sees in the navigation; the API enforces the same rules on every request
// (src/users/roles.ts), so hiding a page is a courtesy, not a control.
import type { Session } from './api.ts';

export type Page =
  'dashboard' | 'tracking' | 'quarantines' | 'outbreak' | 'reports' | 'alerts' | 'settings' | 'users' | 'audit';

const PAGES: Record<Session['role'], Page[]> = {
  admin: ['dashboard', 'tracking', 'quarantines', 'outbreak', 'reports', 'alerts', 'settings', 'users', 'audit'],
  operator: ['dashboard', 'tracking', 'quarantines', 'outbreak', 'reports', 'alerts'],
  analyst: ['dashboard', 'tracking', 'quarantines', 'outbreak', 'reports', 'alerts'],
  helpdesk: ['quarantines'],
};

export const TITLES: Record<Page, string> = {
  dashboard: 'Dashboard',
  tracking: 'Message tracking',
  quarantines: 'Quarantines',
  outbreak: 'Outbreak Filters',
  reports: 'Reports',
  alerts: 'Alerts',
  settings: 'Settings',
  users: 'Users',
  audit: 'Audit log',
};

export function pagesFor(role: Session['role']): Page[] {
  return PAGES[role];
}

/** May this role release and delete held messages? */
export function canActOnQuarantine(role: Session['role']): boolean {
  return role !== 'analyst';
}
