ALTER TABLE "characters" ADD COLUMN "style" jsonb;--> statement-breakpoint
ALTER TABLE "voices" ADD COLUMN "style" jsonb;