ALTER TABLE "messages" ADD COLUMN "status" text DEFAULT 'complete' NOT NULL;--> statement-breakpoint
ALTER TABLE "messages" ADD CONSTRAINT "messages_status_check" CHECK ("messages"."status" in ('complete', 'interrupted', 'failed'));--> statement-breakpoint
UPDATE "messages" SET "status" = 'interrupted' WHERE "interrupted";
