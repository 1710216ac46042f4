ALTER TABLE "messages" ADD COLUMN "alternatives" jsonb DEFAULT '[]'::jsonb NOT NULL;--> statement-breakpoint
ALTER TABLE "messages" ADD COLUMN "alternative_index" integer DEFAULT 0 NOT NULL;
