// @zone-eu/mailsplit's Splitter finds the end of every line with a JavaScript loop over every byte of the
// message (a fifth of the parse worker's time on a 2 MB base64 message). FastSplitter is the Splitter with
// that one loop replaced by Buffer.indexOf: its _transform below is mailsplit 5.4.19's (MIT), unchanged
// but for the line marked "natively" and type annotations. Checked against the original on the corpus
// and random chunking in test/mime-splitter.test.ts; pinned to that version in package.json.
/* eslint-disable prefer-const */
import { Splitter } from '@zone-eu/mailsplit';

/** mailsplit yields to the event loop after this much input in one write */
const YIELD_BYTES = 16 * 1024;

/** mailsplit's trimBodyLineEnd: the line ending before a boundary belongs to the delimiter. */
function trimBodyLineEnd(group: any, chunk: Buffer, start: number, end: number): number {
  if (group.type !== 'body' || !group.node || !group.node.parentNode) {
    return end;
  }
  if (end > start && chunk[end - 1] === 0x0a) {
    end--;
    if (end > start && chunk[end - 1] === 0x0d) {
      end--;
    }
  }
  return end;
}

function fastTransform(
  this: any,
  chunk: Buffer,
  encoding: BufferEncoding,
  callback: (err?: Error | null) => void,
): void {
  // process line by line
  // find next line ending
  let pos = 0;
  let i = 0;
  /** @type {SplitterGroup} */
  let group: any = {
    type: 'none',
  };
  let groupstart = this.lineLength ? -this.lineLength : 0;
  let groupend = 0;
  // input position where the current batch started
  let yieldPos = 0;
  // true while processLine() runs synchronously for the current line
  let inLine = false;
  // set when the current line finished synchronously and the batch may continue in place
  let resumeInLine = false;

  /**
   * Removes a pending line break from body data that belongs to a following boundary.
   *
   * @param {MessageChunk} data Body chunk to adjust in place.
   * @returns {void}
   */
  let checkTrailingLinebreak = (data: any): void => {
    if (data.type === 'body' && data.node.parentNode && data.value && data.value.length) {
      if (data.value[data.value.length - 1] === 0x0a) {
        groupstart--;
        groupend--;
        pos--;
        if (data.value.length > 1 && data.value[data.value.length - 2] === 0x0d) {
          groupstart--;
          groupend--;
          pos--;
          if (groupstart < 0 && !this.lineLength) {
            // store only <CR> as <LF> should be on the positive side
            this.appendPendingLine(Buffer.from([0x0d]));
          }
          data.value = data.value.slice(0, data.value.length - 2);
        } else {
          data.value = data.value.slice(0, data.value.length - 1);
        }
      } else if (data.value[data.value.length - 1] === 0x0d) {
        groupstart--;
        groupend--;
        pos--;
        data.value = data.value.slice(0, data.value.length - 1);
      }
    }
  };

  // assigned below, the line handlers and the batch loop call each other
  /** @type {() => void} */
  let iterateData: () => void;

  /**
   * Continues with the next line. Lines are processed in place and the event loop is
   * only yielded to every YIELD_BYTES of input, a setImmediate per line made line-dense
   * input very slow to split. A line that completed asynchronously always reschedules.
   *
   * @returns {void}
   */
  let nextLine = (): void => {
    if (inLine && i - yieldPos < YIELD_BYTES) {
      resumeInLine = true;
      return;
    }
    setImmediate(iterateData);
  };

  /**
   * Handles the result of processLine() for the line that ends at `i`. Defined once per
   * write rather than once per line.
   *
   * @type {ProcessLineCallback}
   */
  let onLine = (err: Error | null, data?: any, flush?: boolean): void => {
    if (err) {
      this.hasFailed = true;
      setImmediate(() => callback(err));
      return;
    }

    if (!data) {
      return nextLine();
    }

    if (flush) {
      if (group && group.type !== 'none') {
        // do not include the last line ending for body
        groupend = trimBodyLineEnd(group, chunk, groupstart, groupend);
        if (groupstart < groupend) {
          // re-slice, the value the line was emitted with may
          // still include the line ending we just trimmed
          group.value = chunk.slice(groupstart, groupend);
          if (groupend < i && 'value' in data) {
            // the trimmed line ending belongs to the boundary line
            data.value = chunk.slice(groupend, i);
          }
        }
        // the group is pushed even when nothing is left of it, so that a
        // part whose whole body is a line ending still reports a body
        this.push(group);
        group = {
          type: 'none',
        };
        groupstart = groupend = i;
      }
      this.push(data);
      groupend = i;
      return nextLine();
    }

    if (data.type === group.type) {
      // shift slice end position forward
      groupend = i;
    } else {
      // do not include the last line ending for body
      groupend = trimBodyLineEnd(group, chunk, groupstart, groupend);

      if (group.type !== 'none' && group.type !== 'node') {
        // we have a previous data/body chunk to output
        if (groupstart !== groupend) {
          group.value = chunk.slice(groupstart, groupend);
          if (group.value && group.value.length) {
            this.push(group);
            group = {
              type: 'none',
            };
          }
        }
      }

      if (data.type === 'node') {
        this.push(data);
        groupstart = i;
        groupend = i;
      } else if (groupstart < 0) {
        groupstart = i;
        groupend = i;
        checkTrailingLinebreak(data);
        if (data.value && data.value.length) {
          this.push(data);
        }
      } else {
        // start new body/data chunk
        group = data;
        groupstart = groupend;
        groupend = i;
      }
    }
    return nextLine();
  };

  /**
   * Iterates the current input chunk line by line and emits parsed groups.
   *
   * @returns {void}
   */
  iterateData = (): void => {
    yieldPos = i;
    while (i < chunk.length) {
      // find next <LF> natively: the one change from mailsplit, which looks at every byte here
      const lf = chunk.indexOf(0x0a, i);
      if (lf < 0) {
        i = chunk.length;
        break;
      }
      i = lf;

      // line end
      let start = Math.max(pos, 0);
      pos = ++i;

      inLine = true;
      resumeInLine = false;
      this.processLine(chunk.slice(start, i), false, onLine);
      inLine = false;
      if (!resumeInLine) {
        // an error or a scheduled continuation takes over from here
        return;
      }
    }

    // skip last linebreak for body
    pos = trimBodyLineEnd(group, chunk, groupstart, pos);

    if (group.type !== 'none' && group.type !== 'node' && pos > groupstart) {
      // we have a leftover data/body chunk to push out
      group.value = chunk.slice(groupstart, pos);

      if (group.value && group.value.length) {
        this.push(group);
        group = {
          type: 'none',
        };
      }
    }

    if (pos < chunk.length) {
      // checkTrailingLinebreak can push pos before the start of this write when a
      // line ending straddles it. A negative start would make slice() count from
      // the END of the buffer and hand over the wrong bytes entirely.
      this.appendPendingLine(chunk.slice(Math.max(pos, 0)));
    }

    let pendingLineError = this.enforcePendingLineLimit();
    if (pendingLineError) {
      this.hasFailed = true;
      return callback(pendingLineError);
    }
    callback();
  };

  setImmediate(iterateData);
}

export class FastSplitter extends Splitter {}
(FastSplitter.prototype as any)._transform = fastTransform;
