// nuq_pe: the processing element the synthesis table measures: P MAC lanes fed by b-bit
// codebook weight indices (CODEBOOK = 1: a 2^b-entry level table shared by the lanes, then
// u8 x i8 multipliers) or by plain int8 weights (CODEBOOK = 0), the two-segment adder tree
// and the i32 accumulator of nuq_mac_array. Inputs and outputs are registered, so the
// counts cover one pipeline stage of the real datapath.
`default_nettype none
module nuq_pe #(
    parameter P        = 16,
    parameter B        = 4,      // weight index bits (CODEBOOK = 1)
    parameter CODEBOOK = 1
) (
    input  wire           clk,
    input  wire           rst,
    input  wire           en,
    input  wire [P*8-1:0] act,        // u8 levels
    input  wire [P*8-1:0] wgt,        // CODEBOOK: indices in the low B bits of each byte; else i8 levels
    input  wire [P-1:0]   valid,
    input  wire [P-1:0]   seg,
    input  wire           start,
    input  wire           finish,
    input  wire [31:0]    bias_cur,
    input  wire [31:0]    bias_next,
    input  wire           lut_we,     // codebook load port
    input  wire [7:0]     lut_waddr,
    input  wire [7:0]     lut_wdata,
    output wire           done,
    output wire [31:0]    result
);
    reg [P*8-1:0] act_q, wgt_q;
    reg [P-1:0]   valid_q, seg_q;
    reg           en_q, start_q, finish_q;
    reg [31:0]    bias_cur_q, bias_next_q;
    always @(posedge clk) begin
        act_q <= act; wgt_q <= wgt; valid_q <= valid; seg_q <= seg;
        en_q <= en; start_q <= start; finish_q <= finish;
        bias_cur_q <= bias_cur; bias_next_q <= bias_next;
    end
    wire [P*8-1:0] levels;
    generate
        if (CODEBOOK) begin : cb
            wire [P*8-1:0] idx;
            genvar p;
            for (p = 0; p < P; p = p + 1) begin : lane
                assign idx[8*p +: 8] = {{(8-B){1'b0}}, wgt_q[8*p +: B]};
            end
            nuq_codebook_lut #(.P(P), .B(B)) u_lut (
                .clk(clk), .we(lut_we), .waddr(lut_waddr), .wdata(lut_wdata),
                .raddr(idx), .rdata(levels));
        end else begin : int8
            assign levels = wgt_q;
        end
    endgenerate
    nuq_mac_array #(.P(P)) u_mac (
        .clk(clk), .rst(rst), .en(en_q), .act(act_q), .wgt(levels), .valid(valid_q),
        .seg(seg_q), .start(start_q), .bias_cur(bias_cur_q), .finish(finish_q),
        .bias_next(bias_next_q), .done(done), .result(result));
endmodule
`default_nettype wire
