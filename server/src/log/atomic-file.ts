import fs from 'node:fs';

/** Replaces `file` with `text` so that a crash leaves the old or the new content, never a mix: temp file, fsync, rename. */
export function writeFileAtomicSync(file: string, text: string): void {
  const tmp = `${file}.tmp`;
  const fd = fs.openSync(tmp, 'w');
  try {
    fs.writeSync(fd, text);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
}
