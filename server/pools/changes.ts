/**
 * What a pool must save next: the records changed since the last save began (a journal entry
 * carries just those), whether only a full snapshot will do (membership changed, or a save
 * failed), and who to tell that anything changed. An array, not a Set: a big round-robin pool
 * adds a record on every handout, and each record's `changed` flag keeps it listed once.
 */
export class ChangeTracker<R extends { changed: boolean }> {
  private changed: R[] = [];
  private needsFull = true;
  private readonly listeners: Array<() => void> = [];
  private readonly reservationListeners: Array<() => void> = [];

  /** Called whenever persisted state changes. */
  onDirty(listener: () => void): void {
    this.listeners.push(listener);
  }

  /** Called when a record asks for a higher reservation (see KeyState.reserved): it wants a save soon. */
  onReservationWanted(listener: () => void): void {
    this.reservationListeners.push(listener);
  }

  /** A record asked for a higher reservation (it is touched as well). */
  wantReservation(): void {
    for (const l of this.reservationListeners) l();
  }

  /** Pool-wide state changed. */
  dirty(): void {
    for (const l of this.listeners) l();
  }

  /** A record's persisted state changed: list it for the next journal entry, and tell. */
  touch(rec: R): void {
    if (!rec.changed) {
      rec.changed = true;
      this.changed.push(rec);
    }
    this.dirty();
  }

  /** True when the next save must be a full snapshot. */
  get fullSaveNeeded(): boolean {
    return this.needsFull;
  }

  /** Membership changed, or a save failed (what it carried is not on disk): the next save is full. */
  requireFull(): void {
    this.needsFull = true;
  }

  /** The records changed since the last call (a journal entry), and a fresh list for what changes next. */
  takeChanged(): R[] {
    const changed = this.changed;
    this.changed = [];
    for (const rec of changed) rec.changed = false;
    return changed;
  }

  /** A full save begins: everything is in it, and what changes from now on goes to the next. */
  takeFull(): void {
    this.takeChanged();
    this.needsFull = false;
  }
}
