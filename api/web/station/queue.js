// Placeholder: the offline capture queue (IndexedDB) is being built.

/** How many captured records wait to be sent or applied. */
export async function pendingCount() {
  return 0;
}
