// SecretBox: encrypts the API keys the connection panel stores (AES-256-GCM, a fresh 12-byte IV
// per value, the 16-byte tag checked on reading). The 32-byte key is SECRETS_KEY when set (64 hex
// characters or base64); otherwise it is generated once into DATA_DIR/secrets.key (mode 0600) and
// read from there on later starts. Losing that file makes stored keys unreadable: they are then
// reported as unset and must be typed again (docs/configuration.md, "Endpoint settings").
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

const VERSION = 'v1';
const KEY_FILE = 'secrets.key';

export class SecretBox {
  private key: Promise<Buffer> | undefined;

  /**
   * `secretsKey` is SECRETS_KEY; without it the key file in `dataDir` is read (or created) the
   * first time a key is sealed or opened, so a server that never stores a key writes no file.
   */
  constructor(
    private readonly secretsKey: Buffer | undefined,
    private readonly dataDir: string,
  ) {}

  /** Where the key comes from, for the log (never the key). */
  get source(): string {
    return this.secretsKey ? 'SECRETS_KEY' : join(this.dataDir, KEY_FILE);
  }

  private keyOf(): Promise<Buffer> {
    this.key ??= this.secretsKey ? Promise.resolve(this.secretsKey) : readOrCreateKey(join(this.dataDir, KEY_FILE));
    return this.key;
  }

  async seal(plain: string): Promise<string> {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', await this.keyOf(), iv);
    const data = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
    return [VERSION, iv, cipher.getAuthTag(), data].map((part) => (typeof part === 'string' ? part : part.toString('base64url'))).join(':');
  }

  /** The plaintext, or undefined when the value was sealed with another key or is damaged. */
  async open(sealed: string): Promise<string | undefined> {
    const [version, iv, tag, data] = sealed.split(':');
    if (version !== VERSION || iv === undefined || tag === undefined || data === undefined) return undefined;
    try {
      const decipher = createDecipheriv('aes-256-gcm', await this.keyOf(), Buffer.from(iv, 'base64url'));
      decipher.setAuthTag(Buffer.from(tag, 'base64url'));
      return Buffer.concat([decipher.update(Buffer.from(data, 'base64url')), decipher.final()]).toString('utf8');
    } catch {
      return undefined;
    }
  }
}

async function readOrCreateKey(path: string): Promise<Buffer> {
  try {
    const key = Buffer.from((await readFile(path, 'utf8')).trim(), 'hex');
    if (key.length === 32) return key;
    throw new Error(`${path} does not hold a 32-byte hex key: delete it (stored API keys are then lost) or set SECRETS_KEY`);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  const key = randomBytes(32);
  await mkdir(join(path, '..'), { recursive: true });
  // wx: two processes starting at once must not both write a key; the loser reads the winner's.
  try {
    await writeFile(path, `${key.toString('hex')}\n`, { mode: 0o600, flag: 'wx' });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return readOrCreateKey(path);
    throw error;
  }
  await chmod(path, 0o600); // the umask may have widened it
  return key;
}
