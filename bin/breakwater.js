#!/usr/bin/env node
// Entry point. File I/O (spool writes and fsyncs) runs on libuv's thread pool; the default of 4
// threads is too few for group commit under load, and it must be set before the pool starts.
process.env.UV_THREADPOOL_SIZE ??= '16';
const { main } = await import('../src/cli/main.ts');
await main(process.argv);
