/**
 * A text cell a spreadsheet will not run: one that starts with `=`, `+`, `-`, `@`, a tab or a carriage
 * return (what Excel, LibreOffice and Google Sheets read as a formula) gets a leading `'`, which they
 * show as text. Every CSV Concord writes passes its text through this.
 */
const FORMULA_START = /^[=+\-@\t\r]/;

export const spreadsheetSafe = (value: string): string => (FORMULA_START.test(value) ? `'${value}` : value);
