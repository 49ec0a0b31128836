// CommonJS MIME helpers: libmime (RFC 2047/2231 words) and iconv-lite (charsets), typed minimally.
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

const require = createRequire(import.meta.url);

export const libmime: Libmime = require('libmime') as Libmime;
export const iconv: Iconv = require('iconv-lite') as Iconv;
