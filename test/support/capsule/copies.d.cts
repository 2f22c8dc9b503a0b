// Types of copies.cjs for the TypeScript tests.
export declare const checkout: string;
export declare function makeCopies(
  root: string,
  copies: { name: string; version: string; extraExport?: string }[],
): void;
