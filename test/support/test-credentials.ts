/**
 * Test support: the secret key and environment the engine's emulator-backed tests share, in a module
 * of its own so a child process the tests start can use them without loading the test runner.
 */
import { parseSecretKey, type SecretKey } from "../../src/config/secret-box";

const keyResult = parseSecretKey(Buffer.alloc(32, 9).toString("base64"));
if (!keyResult.ok) throw new Error(keyResult.error.message);
export const TEST_KEY: SecretKey = keyResult.value;
export const TEST_SUBSCRIPTION_KEY = "sync-test-subscription-key";
/** What `{ env: … }` references in the tests' configs resolve from. */
export const TEST_ENV = {
  RE_SECRET: "re-secret",
  RE_KEY: TEST_SUBSCRIPTION_KEY,
  CC_SECRET: "cc-secret",
  /** A webhook secret long enough to be accepted (at least 16 characters). */
  WEBHOOK_SECRET: "test-webhook-secret-8c3d",
};
/** TEST_KEY as CONCORD_SECRET_KEY holds it, for a child process the tests start as `concord`. */
export const TEST_KEY_TEXT = Buffer.alloc(32, 9).toString("base64");
