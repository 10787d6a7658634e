// nuq_gap: global average pooling of one channel, streamed one level per cycle, rounded
// exactly as the integer model: (sum + n/2) / n with integer division (round half up).
// first starts a channel, last ends it; avg/valid follow one cycle after last.
`default_nettype none
module nuq_gap (
    input  wire        clk,
    input  wire        rst,
    input  wire        en,
    input  wire        first,
    input  wire        last,
    input  wire [7:0]  din,
    input  wire [23:0] n,       // h * w
    output reg         valid,
    output reg  [7:0]  avg
);
    reg  [31:0] sum;
    wire [31:0] total = (first ? 32'd0 : sum) + {24'd0, din};
    wire [31:0] q     = (total + {9'd0, n[23:1]}) / {8'd0, n};
    always @(posedge clk) begin
        if (rst) begin
            sum <= 32'd0;
            valid <= 1'b0;
            avg <= 8'd0;
        end else begin
            valid <= en && last;
            if (en) begin
                sum <= total;
                if (last) avg <= q[7:0];
            end
        end
    end
endmodule
`default_nettype wire
