// The CTIM entities the relay module answers with (CTIM schema 1.3, threatgrid/ctim; reference S21): only
// the fields we fill. Their JSON Schemas, written from the CTIM documentation, are in ./schemas/ and
// every answer is checked against them in the tests.
import type { Observable } from '../observables.ts';

export type { Observable } from '../observables.ts';

/** The CTIM schema version our entities follow. */
export const CTIM_SCHEMA_VERSION = '1.3.29';

/** CTIM's disposition map: a number and its name always go together. */
export const DISPOSITIONS = { 1: 'Clean', 2: 'Malicious', 3: 'Suspicious', 4: 'Common', 5: 'Unknown' } as const;
export type Disposition = keyof typeof DISPOSITIONS;
export type DispositionName = (typeof DISPOSITIONS)[Disposition];

/** CTIM's HighMedLow vocabulary (confidence), and severity, which adds Critical. */
export type Confidence = 'Info' | 'Low' | 'Medium' | 'High' | 'None' | 'Unknown';
export type Severity = Confidence | 'Critical';

/** CTIM's sighting resolution vocabulary (open; these four are the documented values). */
export type Resolution = 'detected' | 'blocked' | 'allowed' | 'contained';

export interface ObservedTime {
  start_time: string;
  end_time?: string;
}

export interface ValidTime {
  start_time?: string;
  end_time?: string;
}

/** A relation inside a sighting (CTIM ObservedRelation): `source` <relation> `related`. */
export interface ObservedRelation {
  origin: string;
  origin_uri?: string;
  /** from CTIM's observable relation vocabulary (`Sent_To`, `Sent_By`, `Contains`, `Received_From`, …) */
  relation: string;
  source: Observable;
  related: Observable;
}

/** A sighting target (CTIM SightingTarget): here, a recipient mailbox. */
export interface SightingTarget {
  /** CTIM's sensor vocabulary is open; a mailbox is `email` */
  type: string;
  observables: Observable[];
  observed_time: ObservedTime;
}

export interface Sighting {
  type: 'sighting';
  id: string;
  schema_version: string;
  count: number;
  confidence: Confidence;
  observed_time: ObservedTime;
  observables: Observable[];
  targets: SightingTarget[];
  relations: ObservedRelation[];
  sensor: string;
  resolution: Resolution;
  severity: Severity;
  internal: boolean;
  source: string;
  source_uri: string;
  title: string;
  description: string;
  short_description: string;
  external_ids: string[];
  tlp: 'red' | 'amber' | 'green' | 'white';
  timestamp: string;
}

export interface Judgement {
  type: 'judgement';
  id: string;
  schema_version: string;
  observable: Observable;
  disposition: Disposition;
  disposition_name: DispositionName;
  priority: number;
  confidence: Confidence;
  severity: Severity;
  source: string;
  source_uri: string;
  valid_time: ValidTime;
  reason: string;
  reason_uri: string;
  tlp: 'red' | 'amber' | 'green' | 'white';
  timestamp: string;
}

export interface Verdict {
  type: 'verdict';
  id: string;
  schema_version: string;
  observable: Observable;
  disposition: Disposition;
  disposition_name: DispositionName;
  valid_time: ValidTime;
  judgement_id?: string;
}

/** An entity group of a relay answer (`{count, docs}`). */
export interface Docs<T> {
  count: number;
  docs: T[];
}
