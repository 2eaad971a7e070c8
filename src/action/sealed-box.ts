/**
 * Encrypts a secret value for GitHub's secrets API: a libsodium sealed box (X25519 + XSalsa20-Poly1305) for the
 * scope's public key, both in standard Base64 as GitHub's REST documentation prescribes.
 */
import sodium from 'libsodium-wrappers';

export async function sealSecret(publicKeyBase64: string, value: string): Promise<string> {
  await sodium.ready;
  const key = sodium.from_base64(publicKeyBase64, sodium.base64_variants.ORIGINAL);
  const sealed = sodium.crypto_box_seal(sodium.from_string(value), key);
  return sodium.to_base64(sealed, sodium.base64_variants.ORIGINAL);
}

/** True when `value` decodes to a 32-byte Curve25519 public key. */
export async function isPublicKey(value: string): Promise<boolean> {
  await sodium.ready;
  try {
    return sodium.from_base64(value, sodium.base64_variants.ORIGINAL).length === 32;
  } catch {
    return false;
  }
}
