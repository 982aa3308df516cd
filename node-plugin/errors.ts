/**
 * The errors the agent's address service throws and its two callers, the CNI handler and the CNM driver,
 * turn into their protocol's answers (CNI code 11 "try again later"; a libnetwork error naming the pool).
 * Both sides import these classes from here and recognise them with `instanceof`, so an error that only
 * shares a name (another module's class, a renamed copy) is never mistaken for one of them.
 */

/** The node's pool has no free address: demand has been raised; the message says what to do. */
export class NoFreeAddressError extends Error {
  override name = 'NoFreeAddressError';
}

/** The node's record is missing or has no status yet: no address can be handed out. */
export class PoolNotReadyError extends Error {
  override name = 'PoolNotReadyError';
}
