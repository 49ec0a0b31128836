// CommonJS helpers that are not direct dependencies of Breakwater but ship with
// @zone-eu/mailsplit (libmime, and iconv-lite through libmime). They are resolved
// relative to mailsplit so that they are found wherever the package manager put them.
import { createRequire } from 'node:module';

export interface Libmime {
  decodeWords(value: string): string;
}

export interface IconvDecoder {
  write(buf: Buffer): string;
  end(): string | undefined;
}

export interface Iconv {
  encodingExists(name: string): boolean;
  getDecoder(name: string, options?: { stripBOM?: boolean }): IconvDecoder;
}

const mailsplitRequire = createRequire(import.meta.resolve('@zone-eu/mailsplit'));
const libmimeRequire = createRequire(mailsplitRequire.resolve('libmime'));

export const libmime: Libmime = mailsplitRequire('libmime') as Libmime;
export const iconv: Iconv = libmimeRequire('iconv-lite') as Iconv;
