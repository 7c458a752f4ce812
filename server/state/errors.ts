/**
 * Why a state file cannot be read as a whole (read-state.ts and state-parser.ts throw these;
 * file.ts moves the file aside).
 */

/** The file is not a readable Keywarden state at all (as opposed to a few bad entries). */
export class CorruptStateError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CorruptStateError';
  }
}

/**
 * The file is sound JSON but another program's (none of Keywarden's fields: the Flask service's
 * `api_state.json`, say), not a damaged Keywarden state.
 */
export class ForeignStateError extends CorruptStateError {
  constructor(readonly fields: string[]) {
    super(
      `another program's state, not Keywarden's (it has none of version, savedAt, pools` +
        (fields.length ? `; its fields: ${fields.slice(0, 5).join(', ')}${fields.length > 5 ? ', …' : ''}` : '') +
        ')',
    );
    this.name = 'ForeignStateError';
  }
}
