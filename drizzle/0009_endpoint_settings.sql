CREATE TABLE "endpoint_settings" (
	"kind" text PRIMARY KEY NOT NULL,
	"base_url" text NOT NULL,
	"model" text NOT NULL,
	"voice" text,
	"api_key_encrypted" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "endpoint_settings_kind_check" CHECK ("endpoint_settings"."kind" in ('llm', 'tts', 'stt'))
);
