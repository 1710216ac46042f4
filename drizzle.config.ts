// drizzle-kit configuration: `npm run db:generate` turns src/db/schema.ts into SQL migrations in
// drizzle/, which src/db/client.ts applies at start-up (PGlite and PostgreSQL alike).
import { defineConfig } from 'drizzle-kit';

export default defineConfig({
  dialect: 'postgresql',
  schema: './src/db/schema.ts',
  out: './drizzle',
});
