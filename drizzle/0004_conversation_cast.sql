ALTER TABLE "conversations" ADD COLUMN "reply_strategy" text DEFAULT 'natural' NOT NULL;--> statement-breakpoint
ALTER TABLE "conversations" ADD COLUMN "allow_self_responses" boolean DEFAULT false NOT NULL;--> statement-breakpoint
ALTER TABLE "conversations" ADD COLUMN "muted" jsonb DEFAULT '[]'::jsonb NOT NULL;--> statement-breakpoint
ALTER TABLE "conversations" ADD COLUMN "auto_mode" boolean DEFAULT false NOT NULL;--> statement-breakpoint
ALTER TABLE "conversations" ADD COLUMN "auto_mode_delay_ms" integer DEFAULT 5000 NOT NULL;--> statement-breakpoint
ALTER TABLE "conversations" ADD CONSTRAINT "conversations_reply_strategy_check" CHECK ("conversations"."reply_strategy" in ('natural', 'list', 'manual', 'pooled'));
