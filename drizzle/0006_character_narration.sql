ALTER TABLE "characters" ADD COLUMN "narration" text;--> statement-breakpoint
ALTER TABLE "characters" ADD COLUMN "narrator_voice" text;--> statement-breakpoint
ALTER TABLE "characters" ADD CONSTRAINT "characters_narrator_voice_voices_voice_fk" FOREIGN KEY ("narrator_voice") REFERENCES "public"."voices"("voice") ON DELETE set null ON UPDATE cascade;--> statement-breakpoint
CREATE INDEX "characters_narrator_voice_idx" ON "characters" USING btree ("narrator_voice");--> statement-breakpoint
ALTER TABLE "characters" ADD CONSTRAINT "characters_narration_check" CHECK ("characters"."narration" in ('all', 'dialogue_only', 'narrated'));
