/** A stack problem a person must fix: says what is wrong and what to do about it. */
export class StackError extends Error {
  override name = 'StackError';
  constructor(
    readonly problem: string,
    readonly fix: string,
  ) {
    super(`${problem}\n  fix: ${fix}`);
  }
}
